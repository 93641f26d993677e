#!/usr/bin/env bash
# On a CUDA machine: compiled parity of the Pallas GLA kernels, then their benchmark.
#   scripts/gpu_pallas_check.sh test     # pytest -m gpu tests/kernels (log: $OUT/gpu_tests.log)
#   scripts/gpu_pallas_check.sh bench    # Small-E + FLA shapes, chunked vs pallas_gpu + tile sweep
#                                        # (+ :no_factored_chunk, without the whole-chunk matmuls)
#   scripts/gpu_pallas_check.sh bench --no-fla   # extra arguments go to the benchmark
# Logs go to $OUT (or /tmp); benchmark records are appended to benchmarks/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
export PYTHONUNBUFFERED=1
mode="${1:-test}"
shift || true
case "$mode" in
  test)
    set -o pipefail
    python3 -m pytest -m gpu tests/kernels -q -x --durations=20 2>&1 | tee "$out/gpu_tests.log"
    ;;
  bench)
    set -o pipefail
    scripts/gpu_kernel_bench.sh --shapes small_e,fla --backends chunked,pallas_gpu \
      --pallas-tiles :no_factored_chunk,64x64x128x1,64x64x64,32x32x64,64x128x128 --iters 10 --repeats 5 "$@" \
      2>&1 | tee "$out/gpu_bench.log"
    cp benchmarks/results.jsonl "$out/results.jsonl"
    ;;
  *)
    echo "usage: $0 test|bench [benchmark args]" >&2
    exit 2
    ;;
esac
