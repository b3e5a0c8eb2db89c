#!/usr/bin/env bash
# The GPU check on the device machine: install the carried wheels, then run benchmarks/gpu_check.py (every figure
# to $OUT/gpu_check.json, its log to $OUT/gpu_check.log). Build .whl/ here first: bash scripts/build_wheelhouse.sh
#   device run: command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 540
# Arguments go to gpu_check.py (e.g. --parts env tests). Here: PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
# --device cpu --quick (a Python that has spaCy installs nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import spacy, spacy_elmo" 2> /dev/null && ls .whl/*.whl > /dev/null 2>&1; then
    # the device README's install line: no index, no dependencies resolved there, into a folder of its own
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/spacy_elmo_gpu_check/out}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
"$PY" benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
