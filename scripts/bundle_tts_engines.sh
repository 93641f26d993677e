#!/usr/bin/env bash
# Pack the speech synthesizers of the synthetic reading corpus (espeak-ng, flite, Festival with its
# kal, ked and slt HTS voices), as installed on this Debian machine, into one relocatable tarball
# for a machine that has no package registry (e.g. a GPU box):
#
#   apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
#   bash scripts/bundle_tts_engines.sh [OUT.tar.xz]          # default .device/tts_engines.tar.xz
#
# There: `mkdir -p P && tar -xJf OUT.tar.xz -C P`, then
# `python -m data_pipeline.make_synthetic_corpus --engines-prefix P ...`. The tarball holds the
# three programs, every shared library they load except the C/C++ runtime (which any Linux has),
# espeak-ng's data and Festival's library and voices, laid out as under / (usr/bin, usr/lib, usr/share).
set -euo pipefail
out="${1:-.device/tts_engines.tar.xz}"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
bins=(/usr/bin/espeak-ng /usr/bin/flite /usr/bin/festival)
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "error: $b not installed (apt-get install espeak-ng flite festival ...)" >&2; exit 2; }
done
mkdir -p "$stage/usr/bin" "$stage/usr/lib"
cp "${bins[@]}" "$stage/usr/bin/"
# Shared libraries, resolved by the dynamic loader; glibc, libstdc++ and libgcc stay behind.
for b in "${bins[@]}"; do ldd "$b"; done | awk '$3 ~ /^\// {print $3}' | sort -u \
  | grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so' \
  | while read -r lib; do cp -L "$lib" "$stage/usr/lib/"; done
mkdir -p "$stage/usr/share"
cp -r /usr/lib/x86_64-linux-gnu/espeak-ng-data "$stage/usr/share/espeak-ng-data"
# English only: the other languages' pronunciation dictionaries are most of espeak-ng's data.
find "$stage/usr/share/espeak-ng-data" -maxdepth 1 -name '*_dict' ! -name 'en_dict' -delete
cp -r /usr/share/festival "$stage/usr/share/festival"
for d in /usr/share/doc/{espeak-ng-data,libflite1,festival,festvox-kallpc16k,festvox-kdlpc16k,festvox-us-slt-hts}; do
  [ -f "$d/copyright" ] && mkdir -p "$stage/usr/share/doc/${d##*/}" && cp "$d/copyright" "$stage/usr/share/doc/${d##*/}/"
done
mkdir -p "$(dirname "$out")"
tar -cJf "$out" -C "$stage" .
echo "$out: $(du -h "$out" | cut -f1) ($(du -sh "$stage" | cut -f1) unpacked)"
