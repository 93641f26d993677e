#!/usr/bin/env bash
# Download flash-linear-attention (FLA) wheels into .whl/ so that a GPU machine without a package
# registry can install them (`pip install --no-deps .whl/*.whl`) and the GLA benchmark can time
# FLA's Triton chunk_gla beside our kernels in the same run. FLA needs only torch, triton, einops.
set -euo pipefail
cd "$(dirname "$0")/.."
FLA_VERSION="${FLA_VERSION:-0.6.0}"
python3 -m pip download --no-deps --only-binary=:all: -d .whl \
  "fla-core==${FLA_VERSION}" "flash-linear-attention==${FLA_VERSION}"
ls -l .whl
