#!/usr/bin/env bash
# Download, into .whl/, the wheels that the GPU machine's image lacks (it has jax[cuda], torch,
# triton, flax, optax, orbax, numpy, scipy, einops, rich, tensorboard but no registry access):
# grain + tfds + their small dependencies (data pipeline), draccus/soundfile/soxr/... (config,
# audio), flash-linear-attention (the kernel baseline) and descript-audio-codec (codec baseline).
# scripts/gpu_measure.sh installs them there with `pip install --no-index --no-deps`.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAT=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
BINARY=(fla-core==0.6.0 flash-linear-attention==0.6.0 grain==0.2.18 array-record==0.8.6 dm-tree==0.1.10
        tensorflow-datasets==4.9.10 immutabledict==4.3.1 simple-parsing==0.1.9 tensorflow-metadata==1.21.0
        googleapis-common-protos==1.76.0 portpicker==1.6.0 termcolor==3.3.0 toml==0.10.2
        docstring_parser==0.18.0 draccus==0.11.6 mergedeep==1.3.4 pyyaml-include==2.2
        soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0 num2words==0.5.14 tensorboardX==2.6.2.2
        descript-audio-codec==1.0.0 descript-audiotools==0.7.2 julius==0.2.8 flatten-dict==0.5.0
        ffmpy==1.0.0 importlib_resources==7.1.0 fire==0.7.1)
SOURCE_ONLY=(promise==2.3 docopt==0.6.2 argbind==0.3.9 randomname==0.2.1)  # no wheels on PyPI: build them
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: "${PLAT[@]}" -d .whl "${BINARY[@]}"
python3 -m pip wheel -q --no-deps -w .whl "${SOURCE_ONLY[@]}"
du -sh .whl
