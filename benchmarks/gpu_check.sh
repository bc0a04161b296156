#!/bin/bash
# The GPU machine's checks in one call (docs/benchmarks.md, "On a GPU"): the recipes on CUDA
# (tests/test_cuda.py), then benchmarks/gpu.py. Run from the repository root, with postlab's missing
# dependencies carried as wheels in .whl/ and SmolLM2's tokenizer files in .gpu/tokenizer/ (no network
# there; see docs/benchmarks.md for how both are prepared; wordfreq, too big as a wheel, as a trimmed copy in
# .gpu/site/). Extra arguments go to benchmarks/gpu.py.
set -o pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if ! python3 -c "import pydantic, trl" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
[ -d .gpu/site ] && export PYTHONPATH=$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}  # wordfreq and its needs, copied
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
[ -n "$SKIP_TESTS" ] || timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -40 | tee "$OUT/test_cuda.log"
python3 benchmarks/gpu.py --out "$OUT/gpu.json" "$@" 2>&1 | grep -v "Writing model shards" | tee "$OUT/gpu.log"
