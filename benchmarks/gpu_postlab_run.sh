#!/bin/bash
# `postlab run --preset tiny` on the GPU machine (issue 20: the whole recipe unchanged on CUDA). Its image lacks
# some of postlab's dependencies: benchmarks/gpu_prepare.sh puts their wheels in .whl/ and .gpu/wheels-run/
# and wordfreq in .gpu/site/ (carry .whl and .gpu). Writes the run to $OUT/rt (summary.json, report, logs).
set -o pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/pydantic*.whl \
    .whl/annotated_types*.whl .whl/typing_*.whl .whl/langdetect*.whl .gpu/wheels-run/*.whl 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
import importlib
mods = "torch transformers tokenizers safetensors peft gguf numpy langdetect wordfreq pydantic yaml typer tqdm matplotlib " \
       "fastapi uvicorn jinja2 multipart sqlalchemy alembic prometheus_client httpx".split()
missing = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:  # noqa: BLE001
        missing.append(f"{m} ({type(e).__name__}: {e})")
print("missing:", missing or "none")
PY
timeout 240 python3 -m postlab run --preset tiny --out "$OUT/rt" 2>&1 | tail -40
python3 -c "
import json; s = json.load(open('$OUT/rt/summary.json'))
m = s['machine']
print('device', m['device'], m['device_name'], 'dtype', m['dtype'], '|', m['dtype_why'])
print('timings_s', s['timings_s']); print('gain', s['gain'])" 2>&1 | tail -8
