#!/usr/bin/env bash
# Set up .venv with spacy-elmo and what its tests and project need, and a Java runtime for the Spark tests.
# The CPU build of torch goes in first: an unpinned torch would pull several GB of CUDA wheels. Set TORCH_SPEC to choose another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The Spark tests need a Java runtime (PySpark 4 runs on Java 17 or later): from Debian's packages when missing
if ! command -v java >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq openjdk-17-jre-headless >/dev/null || apt-get install -y -qq default-jre-headless >/dev/null
fi
command -v java >/dev/null || echo "setup.sh: no Java runtime (apt-get install openjdk-17-jre-headless): the Spark tests will be skipped" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt -e ".[test,project,ray,spark]"
.venv/bin/python -c "import torch, spacy, spacy_elmo; print('torch', torch.__version__, '| spacy', spacy.__version__, '| spacy-elmo', spacy_elmo.__version__)"
