#!/usr/bin/env bash
# Run the GLA kernel benchmark on a CUDA machine whose python3 has jax[cuda], torch and triton
# (FLA comes from .whl/, see scripts/fetch_gpu_wheels.sh). Extra arguments go to the benchmark.
# Results are appended to benchmarks/results.jsonl (or --out).
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/fla_site .whl/*.whl
  export PYTHONPATH="/tmp/fla_site:${PYTHONPATH:-}"
fi
export PYTHONUNBUFFERED=1
python3 -m benchmarks.kernels.gla_bench "$@"
