"""The shipped configs through spaCy's own CLI (no ``--code``), and a packaged pipeline in a fresh venv."""
import importlib.util
import json
import shutil
import site
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


def fresh_venv_seeing_this_one(venv: Path) -> Path:
    """A new venv whose Python also sees this interpreter's packages (torch, spaCy, spacy-elmo), so that
    nothing is downloaded; its python.

    ``venv --system-site-packages`` would not do: made from a venv's Python it reaches the base
    interpreter's packages, not the venv's. A ``.pth`` line that calls ``site.addsitedir`` appends this
    environment's site-packages after the new venv's own, and runs their ``.pth`` files (the editable
    install of spacy-elmo), so the new venv's own installs come first.
    """
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    ours = [path for path in site.getsitepackages() if Path(path).is_dir()]
    (Path(purelib) / "outer-environment.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    return python


@pytest.mark.slow
def test_spacy_package_wheel_installs_and_loads_in_a_fresh_venv(tmp_path, tiny_files, corpora):
    if importlib.util.find_spec("build") is None and importlib.util.find_spec("wheel") is None:
        pytest.skip("spacy package --build wheel needs the 'build' or 'wheel' package")
    (tmp_path / "weights").mkdir()
    copies = [Path(shutil.copy(f, tmp_path / "weights")) for f in tiny_files]
    settings = {"window": 7, "max_batch_tokens": 333, "cache_size": 11, "doc_cache_size": 0, "device": "cpu",
                "precision": "exact", "frozen": True}
    spacy_cli("train", CONFIGS / "ner_elmo.cfg", "--output", tmp_path / "out",
              *overrides("ner_elmo", corpora["ner"], copies),
              *[a for k, v in settings.items() for a in (f"--components.elmo.model.{k}", json.dumps(v))])
    (tmp_path / "dist").mkdir()
    spacy_cli("package", tmp_path / "out" / "model-last", tmp_path / "dist", "--name", "elmo_ner_test",
              "--version", "0.0.1", "--build", "wheel", "--force")
    for f in copies:  # the package carries the weights
        f.unlink()
    (wheel,) = (tmp_path / "dist").glob("*/dist/*.whl")
    venv = tmp_path / "venv"
    python = fresh_venv_seeing_this_one(venv)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True, timeout=300)
    script = (
        "import json, spacy; nlp = spacy.load('en_elmo_ner_test'); doc = nlp('Alice lives in Paris .');"
        "print(json.dumps([nlp.pipe_names, doc._.elmo_data.layers.shape[2], spacy.util.get_package_path("
        "'en_elmo_ner_test').as_posix(), nlp.get_pipe('elmo').settings.to_dict()]))"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path / "venv")
    assert result.returncode == 0, result.stderr[-3000:]
    names, width, location, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert names == ["elmo", "ner"] and width == TINY_WIDTH
    assert loaded == settings
    assert location.startswith(venv.as_posix())
