#!/usr/bin/env bash
# Build .whl/ (git-ignored): what the GPU device machine lacks to run benchmarks/gpu_check.sh, carried with
# the working tree (`carry: [".whl"]`, 64 MiB for the tree and the wheels together).
#
#   bash scripts/build_wheelhouse.sh          # run here, in the checkout, after scripts/setup.sh
#
# The device image holds Python 3.12, torch + CUDA, numpy, h5py, pyarrow, pytest, hypothesis and more
# (/work/.library/device/KINDS.md), but not spaCy. We take the closure of spacy-elmo's needs (extras
# hdf5, parquet and the test tools) with the versions installed in .venv, drop what the image has and
# torch/CUDA, and download each one as a cp312 manylinux wheel with --no-deps (one version of each; two
# would stop the install there). Then spacy-elmo itself as a wheel (its entry points register the `elmo`
# factory) and the check's data under .whl/data (../shared does not travel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.whl
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}
SHARED=${SHARED:-../shared/data}
CORPUS_BYTES=${CORPUS_BYTES:-2500000}  # about 500k spaCy tokens: the 256k-token batch budget and the 100k-token embed
LIMIT=$((64 * 1024 * 1024))

grep -qx '/.whl/' .gitignore || grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
rm -rf "$DEST"
mkdir -p "$DEST"

# name==version per line, from .venv's metadata
"$PY" - "$DEVICE_PYTHON" > "$DEST/needs.txt" <<'EOF'
import re
import sys
from importlib import metadata

from packaging.requirements import Requirement

python = sys.argv[1]
# the 'cuda' image's packages, as KINDS.md lists them (2026-11-17); torch, CUDA and triton are never carried
DEVICE_HAS = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split()


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


skip = {norm(n) for n in DEVICE_HAS} | {"spacy-elmo"}
env = {"python_version": python, "python_full_version": python + ".3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython"}
roots = [Requirement(r) for r in metadata.requires("spacy-elmo") or []]
roots = [r for r in roots if r.marker is None or any(r.marker.evaluate({**env, "extra": e}) for e in ("hdf5", "parquet", "test"))]
roots = [r for r in roots if norm(r.name) != "mypy"]  # the type checker runs here, not there
seen, todo, needs = set(), list(roots), {}
while todo:
    req = todo.pop()
    name = norm(req.name)
    if name in seen or name.startswith("nvidia-") or name in skip:
        continue
    seen.add(name)
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        sys.exit(f"build_wheelhouse: {req.name} is needed on the device but not installed in this venv (run scripts/setup.sh)")
    needs[name] = dist.version
    for line in dist.requires or []:
        sub = Requirement(line)
        if sub.marker is None or sub.marker.evaluate({**env, "extra": ""}):
            todo.append(sub)
for name in sorted(needs):
    print(f"{name}=={needs[name].split('+')[0]}")
EOF
echo "carried packages: $(tr '\n' ' ' < "$DEST/needs.txt")"

platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for n in 24 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
xargs "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
    "${platforms[@]}" -d "$DEST" < "$DEST/needs.txt"
"$PY" -m pip wheel -q --no-deps -w "$DEST" .
# the check's data (../shared does not travel): raw text, and the first sentences of WNUT-17 train and dev
mkdir -p "$DEST/data"
head -c "$CORPUS_BYTES" "$SHARED/raw/wnut17_raw_minus_devtest.txt" | sed '$d' | gzip -9 > "$DEST/data/corpus.txt.gz"
awk 'BEGIN {RS = ""; ORS = "\n\n"} NR <= 400' "$SHARED/wnut17/wnut17train.conll" > "$DEST/data/wnut17_train.conll"
awk 'BEGIN {RS = ""; ORS = "\n\n"} NR <= 100' "$SHARED/wnut17/emerging.dev.conll" > "$DEST/data/wnut17_dev.conll"

find "$DEST" -type f -printf '%10s  %P\n' | sort -k2
wheels=$(find "$DEST" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((wheels + tree))
echo "wheelhouse: $wheels bytes ($(awk -v b="$wheels" 'BEGIN {printf "%.1f", b / 1048576}') MiB) in $DEST;" \
     "with the tracked tree ($tree bytes): $(awk -v b="$total" 'BEGIN {printf "%.1f", b / 1048576}') MiB of the 64 MiB carry limit"
if [ "$total" -gt "$LIMIT" ]; then
    echo "build_wheelhouse: over the 64 MiB limit" >&2
    exit 1
fi
