"""The shipped configs through spaCy's own CLI (no ``--code``), and a packaged pipeline in a fresh venv."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CONFIGS, TINY_WIDTH, cat_docs, ner_docs, write_corpus

import spacy


def spacy_cli(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "spacy", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def overrides(name: str, data: Path, tiny_files) -> list:
    task = "ner" if name.startswith("ner") else "textcat"
    args = ["--paths.train", data, "--paths.dev", data, "--training.max_steps", 4, "--training.eval_frequency", 2]
    if name.endswith("elmo"):
        options, weights = tiny_files
        args += ["--paths.elmo_weights", weights, "--paths.elmo_options", options,
                 f"--components.{task}.model.tok2vec.elmo.width", TINY_WIDTH]
    return args


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    blank = spacy.blank("en")
    root = tmp_path_factory.mktemp("corpora")
    return {"ner": write_corpus(root / "ner", ner_docs(blank)), "textcat": write_corpus(root / "cat", cat_docs(blank))}


@pytest.mark.parametrize("name", ["ner_elmo", "ner_baseline", "textcat_elmo", "textcat_baseline"])
def test_fill_config_debug_config_and_train(name, tmp_path, tiny_files, corpora):
    data = corpora["ner" if name.startswith("ner") else "textcat"]
    config = CONFIGS / f"{name}.cfg"
    spacy_cli("init", "fill-config", config, tmp_path / "filled.cfg")
    spacy_cli("debug", "config", config, *overrides(name, data, tiny_files)[:4])
    if name.endswith("elmo"):  # the baselines train in test_training.py
        spacy_cli("train", config, "--output", tmp_path / "out", *overrides(name, data, tiny_files))
        assert spacy.load(tmp_path / "out" / "model-last").pipe_names == ["elmo", name.split("_")[0]]


@pytest.mark.slow
def test_spacy_package_wheel_installs_and_loads_in_a_fresh_venv(tmp_path, tiny_files, corpora):
    if importlib.util.find_spec("build") is None and importlib.util.find_spec("wheel") is None:
        pytest.skip("spacy package --build wheel needs the 'build' or 'wheel' package")
    (tmp_path / "weights").mkdir()
    copies = [Path(shutil.copy(f, tmp_path / "weights")) for f in tiny_files]
    spacy_cli("train", CONFIGS / "ner_elmo.cfg", "--output", tmp_path / "out",
              *overrides("ner_elmo", corpora["ner"], copies))
    (tmp_path / "dist").mkdir()
    spacy_cli("package", tmp_path / "out" / "model-last", tmp_path / "dist", "--name", "elmo_ner_test",
              "--version", "0.0.1", "--build", "wheel", "--force")
    for f in copies:  # the package carries the weights
        f.unlink()
    (wheel,) = (tmp_path / "dist").glob("*/dist/*.whl")
    venv = tmp_path / "venv"
    # the system site-packages provide torch and spacy-elmo: nothing is downloaded
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True, timeout=300)
    script = (
        "import json, spacy; nlp = spacy.load('en_elmo_ner_test'); doc = nlp('Alice lives in Paris .');"
        "print(json.dumps([nlp.pipe_names, doc._.elmo_data.layers.shape[2], spacy.util.get_package_path("
        "'en_elmo_ner_test').as_posix()]))"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path / "venv")
    assert result.returncode == 0, result.stderr[-3000:]
    names, width, location = json.loads(result.stdout.strip().splitlines()[-1])
    assert names == ["elmo", "ner"] and width == TINY_WIDTH
    assert location.startswith(venv.as_posix())
