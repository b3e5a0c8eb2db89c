"""The published models, offline: a local HTTP server on 127.0.0.1 serves tiny biLMs in the published layout
under AllenNLP's paths; `spacy project assets --extra` fetches them all through vars.elmo_url, and the
`published` workflow (slow) fetches one and trains NER and textcat over it on a tiny slice of the data."""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Tuple
from urllib.parse import urlparse

import pytest

import reference_math as R
from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/allennlp/models/elmo"  # the served base URL has a path, as AllenNLP's has
PROJECTIONS = {"small": 16, "medium": 8, "original": 12, "original_5.5B": 16, "pubmed": 16}  # widths 2x these
SMALL_VARS = {"limit": 60, "ner_steps": 20, "textcat_steps": 20, "seeds": 0}


@contextmanager
def serving(root: Path) -> Iterator[Tuple[str, List[Tuple[str, int]]]]:
    """``(base URL, [(path, status), ...] of the requests)`` of an HTTP server of ``root`` on 127.0.0.1."""
    requests: List[Tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code)))

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{PREFIX}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def extra_assets(project: Path, base: str) -> Dict[str, str]:
    """``{dest: url}`` of the project's extra assets with ``vars.elmo_url = base``."""
    from weasel.util import load_project_config

    config = load_project_config(project, overrides={"vars.elmo_url": base, "vars.nlpl_url": base})
    return {a["dest"]: a["url"] for a in config["assets"] if a.get("extra")}


def serve_tiny_models(root: Path, base: str, assets: Dict[str, str]) -> Dict[str, bytes]:
    """Write a tiny biLM of each model's projection under the path of each asset's URL; ``{dest: bytes}``."""
    served = {}
    for seed, (dest, url) in enumerate(sorted(assets.items())):
        model = Path(dest).parent.name
        target = root / urlparse(url).path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if model not in PROJECTIONS:  # another language's model (NLPL): a zip of a tiny model in its layout
            import zipfile

            source = Path(__file__).parent / "goldens" / "efml_small"
            with zipfile.ZipFile(target, "w") as archive:
                for path in source.iterdir():
                    archive.write(path, f"{model}/{path.name}")
            served[dest] = target.read_bytes()
            continue
        opts = R.options_dict(32, PROJECTIONS[model], 1, R.FILTERS_TINY, 4)
        options, weights = R.write_published(root / "made" / model, opts, R.random_published_arrays(opts, seed))
        target = root / urlparse(url).path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(options if dest.endswith(".json") else weights, target)
        served[dest] = target.read_bytes()
    return served


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return subprocess.run([sys.executable, "-m", "spacy", "project", *args], capture_output=True, text=True,
                          timeout=900, env=env)


def overrides(**values) -> List[str]:
    return [arg for key, value in values.items() for arg in (f"--vars.{key}", str(value))]


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts"):
        shutil.copytree(ROOT / folder, project / folder)
    return project


def succeeded(result: subprocess.CompletedProcess) -> bool:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return True


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_published_assets_from_a_local_server(tmp_path):
    project = copy_project(tmp_path)
    with serving(tmp_path / "served") as (base, requests):
        assets = extra_assets(project, base)
        english = [Path(d).parent.name for d in assets if Path(d).parent.name in PROJECTIONS]
        assert sorted(english) == sorted(2 * list(PROJECTIONS)) and len(assets) == len(english) + 44 + 3
        served = serve_tiny_models(tmp_path / "served", base, assets)
        # the data first (from the shared folder; `assets` skips the extra ones), then every published model
        assert succeeded(run("run", "assets", str(project), *overrides(shared_data=SHARED_DATA)))
        assert not (project / "assets" / "elmo").exists() and not requests
        assert succeeded(run("assets", str(project), "--extra", *overrides(elmo_url=base, nlpl_url=base)))
    for dest, data in served.items():
        assert (project / dest).read_bytes() == data, dest
    assert sorted(path for path, code in requests if code == 200) == sorted(urlparse(u).path for u in assets.values())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_published_workflow_from_a_local_server(tmp_path):
    import json

    import spacy

    project = copy_project(tmp_path)
    with serving(tmp_path / "served") as (base, requests):
        assets = extra_assets(project, base)
        served = serve_tiny_models(tmp_path / "served", base, assets)
        # the workflow over `medium` (served with projection 8), fetched by its own step
        result = run("run", "published", str(project), *overrides(
            shared_data=SHARED_DATA, elmo_url=base, elmo_model="medium", **SMALL_VARS))
        assert succeeded(result)
    medium = sorted(urlparse(assets[f"assets/elmo/medium/{name}"]).path for name in ("options.json", "weights.hdf5"))
    assert sorted(path for path, code in requests if code == 200) == medium
    for dest in ("assets/elmo/medium/options.json", "assets/elmo/medium/weights.hdf5"):
        assert (project / dest).read_bytes() == served[dest]
    assert "listener width 16" in " ".join(result.stdout.split())  # `info` of the fetched model
    for task in ("ner", "textcat"):
        model = project / "training" / "medium" / f"{task}_elmo" / "seed0" / "model-best"
        config = spacy.util.load_config(model / "config.cfg")
        assert config["components"][task]["model"]["tok2vec"]["elmo"]["width"] == 16  # 2 x the projection
    ner = json.loads((project / "metrics" / "medium" / "ner_elmo" / "seed0.json").read_text())
    textcat = json.loads((project / "metrics" / "medium" / "textcat_elmo" / "seed0.json").read_text())
    assert ner["task"] == "ner" and 0.0 <= ner["f"] <= 1.0 and ner["n_docs"] == 60
    assert textcat["task"] == "textcat" and 0.0 <= textcat["accuracy"] <= 1.0
    report = (project / "reports" / "medium" / "report.md").read_text()
    assert "published ELMo medium" in report and "WNUT-17 NER" in report and "Learned layer weights" in report
    assert (project / "reports" / "medium" / "report.png").stat().st_size > 10_000
