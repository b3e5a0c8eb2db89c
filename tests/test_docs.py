"""The code blocks of README.md and docs/ run as written, against tiny weights, so the docs cannot drift from the API.

Every ```python block runs, and every ```bash block preceded by ``<!-- run -->``, in a working directory that holds
what the docs name: ``options.json`` + ``weights.hdf5`` (a tiny biLM in the published layout, 2 x 128 wide as the
shipped configs' listeners expect), ``bilm/`` (a tiny
pretrain output, with its LM head), ``corpus.txt``, ``train.spacy`` / ``dev.spacy`` (a few NER Docs) and the
shipped ``configs/``. Bash blocks are slow tests; in them ``spacy train`` stops after a few steps
(``SPACY_CONFIG_OVERRIDES``, which spaCy's CLI reads). A block that cannot run here (a
cluster, a GPU, a download) has ``<!-- not run: reason -->`` on the line before its fence.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

import reference_math as R
from helpers import ROOT, TINY, ner_docs, small_config, subprocess_env, synthetic_text

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(page: Path) -> List[Tuple[int, str, str, str]]:
    """``(line, language, marker, code)`` of every fenced block; marker: the HTML comment on the line before."""
    lines = page.read_text(encoding="utf8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if match and match.group(1):
            start, language = i, match.group(1)
            marker = lines[i - 1].strip() if i > 0 and lines[i - 1].strip().startswith("<!--") else ""
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            found.append((start + 1, language, marker, "\n".join(lines[start + 1 : i])))
        i += 1
    return found


def runnable(page: Path) -> List[Tuple[int, str, str]]:
    """``(line, language, code)`` of the blocks this test runs."""
    return [(line, language, code) for line, language, marker, code in blocks(page)
            if not marker.startswith("<!-- not run") and (language == "python" or (language == "bash" and marker == "<!-- run -->"))]


PYTHON_CASES = [pytest.param(page, [(line, code) for line, language, code in runnable(page) if language == "python"],
                             id=str(page.relative_to(ROOT))) for page in PAGES]
BASH_CASES = [pytest.param(page, line, code, id=f"{page.relative_to(ROOT)}:{line}")
              for page in PAGES for line, language, code in runnable(page) if language == "bash"]
# One process per page runs its Python blocks in order, each in a namespace of its own: imports are paid once.
DRIVER = """
import json, sys
for line, code in json.loads(sys.argv[1]):
    print(f"--- {sys.argv[2]}:{line}", file=sys.stderr, flush=True)
    exec(compile(code, f"{sys.argv[2]}:{line}", "exec"), {"__name__": "__main__"})
"""


@pytest.fixture(scope="module")
def workdir_template(tmp_path_factory) -> Path:
    from spacy_elmo.bilm.options import BiLMOptions
    from spacy_elmo.pretraining import pretrain

    root = tmp_path_factory.mktemp("docs")
    opts = R.options_dict(128, 128, 1, R.FILTERS_TINY, 4)  # the projection of `small` and bilm_cpu.json: width 256
    R.write_published(root, opts, R.random_published_arrays(opts, seed=0))
    (root / "corpus.txt").write_text(synthetic_text(300), encoding="utf8")
    pretrain([root / "corpus.txt"], root / "bilm", small_config(max_steps=3), options=BiLMOptions.from_file(TINY))
    shutil.copytree(ROOT / "configs", root / "configs")
    from spacy.lang.en import English
    from spacy.tokens import DocBin

    for name in ("train.spacy", "dev.spacy"):
        DocBin(docs=ner_docs(English())).to_disk(root / name)
    return root


def test_the_pages_have_runnable_blocks():
    assert sum(len(case.values[1]) for case in PYTHON_CASES) >= 5 and all(page.exists() for page in PAGES)


def test_every_not_run_marker_says_why():
    for page in PAGES:
        for line, _, marker, _ in blocks(page):
            if marker.startswith("<!-- not run"):
                assert re.match(r"<!-- not run: \S.* -->", marker), f"{page}:{line}: say why a block is not run"


def run_in_copy(template: Path, tmp_path: Path, command: List[str], where: str, **env: str) -> None:
    work = tmp_path / "work"
    shutil.copytree(template, work)
    result = subprocess.run(command, cwd=work, env={**subprocess_env(), **env}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("page, code_blocks", PYTHON_CASES)
def test_python_blocks_run_as_written(page, code_blocks, workdir_template, tmp_path):
    if not code_blocks:
        pytest.skip("no Python block on this page")
    where = str(page.relative_to(ROOT))
    run_in_copy(workdir_template, tmp_path, [sys.executable, "-c", DRIVER, json.dumps(code_blocks), where], where)


@pytest.mark.slow
@pytest.mark.parametrize("page, line, code", BASH_CASES)
def test_bash_blocks_marked_run_run_as_written(page, line, code, workdir_template, tmp_path):
    bin_dir = Path(sys.executable).parent  # the docs say `python`: this venv's
    command = ["bash", "-euo", "pipefail", "-c", f'export PATH="{bin_dir}:$PATH"\n{code}']
    run_in_copy(workdir_template, tmp_path, command, f"{page.relative_to(ROOT)}:{line}",
                SPACY_CONFIG_OVERRIDES="--training.max_steps 4 --training.eval_frequency 2")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_names_a_file_that_exists():
    broken = []
    for page in [*PAGES, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md"]:
        for target in LINK.findall(page.read_text(encoding="utf8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
