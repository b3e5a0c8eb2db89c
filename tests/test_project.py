"""The project workflow end to end on a tiny slice of the data: `spacy project run all` with small vars."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_project_all_on_a_tiny_slice(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts"):
        shutil.copytree(ROOT / folder, project / folder)
    small = {
        "shared_data": str(SHARED_DATA), "bilm_options": "configs/bilm_tiny.json", "pretrain_steps": 20,
        "pretrain_batch_tokens": 256, "pretrain_minutes": 2, "pretrain_processes": 1, "elmo_width": 32, "ner_steps": 20, "textcat_steps": 20, "limit": 60, "raw_limit": 300,
    }
    overrides = [arg for key, value in small.items() for arg in (f"--vars.{key}", str(value))]
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (project / "reports" / "report.md").read_text()
    assert "WNUT-17 NER" in report and "CLINC150" in report and "Learned layer weights" in report
    assert (project / "reports" / "report.png").stat().st_size > 10_000
    ner = json.loads((project / "metrics" / "ner_elmo.json").read_text())
    textcat = json.loads((project / "metrics" / "textcat_elmo.json").read_text())
    assert ner["task"] == "ner" and ner["n_docs"] == 60
    p, r = ner["p"], ner["r"]
    assert ner["f"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)  # spaCy's scores, read as they are
    assert textcat["task"] == "textcat" and textcat["n_docs"] > 0
    hits = textcat["accuracy"] * textcat["n_docs"]
    assert hits == pytest.approx(round(hits))  # a share of the test Docs
    # the report shows these runs' figures
    assert f"**{100 * ner['f']:.1f}**" in report
    assert f"| textcat_elmo | {100 * textcat['accuracy']:.1f} |" in report
