#!/usr/bin/env bash
# Set up .venv with spacy-elmo and what its tests and project need. The CPU build of torch goes in first:
# an unpinned torch would pull several GB of CUDA wheels. Set TORCH_SPEC to choose another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt -e ".[test,project,ray]"
.venv/bin/python -c "import torch, spacy, spacy_elmo; print('torch', torch.__version__, '| spacy', spacy.__version__, '| spacy-elmo', spacy_elmo.__version__)"
