"""The project workflow end to end on a tiny slice of the data: `spacy project run all` with small vars and two
seeds."""
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy
import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)
RUNS = ("ner_baseline", "ner_elmo", "textcat_baseline", "textcat_elmo")


def project_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", *args[:1], str(project), *args[1:]],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts"):
        shutil.copytree(ROOT / folder, project / folder)
    return project


def tiny_vars(**values) -> List[str]:
    small = {
        "shared_data": str(SHARED_DATA), "bilm_options": "configs/bilm_tiny.json", "pretrain_steps": 20,
        "pretrain_batch_tokens": 256, "pretrain_minutes": 2, "pretrain_processes": 1, "elmo_width": 32,
        "ner_steps": 20, "textcat_steps": 20, "limit": 60, "raw_limit": 300, "seeds": ",".join(map(str, SEEDS)),
        **values,
    }
    return [arg for key, value in small.items() for arg in (f"--vars.{key}", str(value))]


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_project_all_on_a_tiny_slice(tmp_path):
    project = copy_project(tmp_path)
    overrides = tiny_vars()
    project_run(project, "all", *overrides)
    for run in RUNS:
        for seed in SEEDS:
            folder = project / "training" / run / f"seed{seed}"
            assert (folder / "model-best").is_dir() and (folder / "log.jsonl").stat().st_size > 0
            assert f"--system.seed {seed}" in " ".join(json.loads((folder / "run.json").read_text())["command"])
    report = (project / "reports" / "report.md").read_text()
    assert "WNUT-17 NER" in report and "CLINC150" in report and "Learned layer weights" in report
    assert (project / "reports" / "report.png").stat().st_size > 10_000
    metrics = {run: [json.loads((project / "metrics" / run / f"seed{s}.json").read_text()) for s in SEEDS]
               for run in RUNS}
    for ner in metrics["ner_elmo"]:
        assert ner["task"] == "ner" and ner["n_docs"] == 60
        p, r = ner["p"], ner["r"]
        assert ner["f"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)  # spaCy's scores, read as they are
    for textcat in metrics["textcat_elmo"]:
        assert textcat["task"] == "textcat" and textcat["n_docs"] > 0
        hits = textcat["accuracy"] * textcat["n_docs"]
        assert hits == pytest.approx(round(hits))  # a share of the test Docs
    # the report shows these runs' figures: the mean over the seeds, and each seed's
    f = numpy.array([s["f"] for s in metrics["ner_elmo"]])
    assert f"| F | ELMo | {100 * f.mean():.1f} | {100 * f.min():.1f} – {100 * f.max():.1f} | " in report
    accuracy = [f"{100 * s['accuracy']:.1f}" for s in metrics["textcat_elmo"]]
    assert any(line.startswith("| accuracy | ELMo |") and line.endswith(" | ".join(accuracy) + " |")
               for line in report.splitlines())
    summary = json.loads((project / "training" / "bilm" / "summary.json").read_text())
    assert f"held-out perplexity {summary['dev']['ppl']:.1f}" in report

    # an interrupted training continues: the seeds that finished are skipped, the one that stopped runs again
    stopped = project / "training" / "ner_elmo" / "seed1"
    (stopped / "run.json").unlink()
    finished = (project / "training" / "ner_elmo" / "seed0" / "run.json").stat().st_mtime_ns
    result = project_run(project, "train-ner-elmo", *overrides)
    assert "seed0: finished with these settings and inputs, skipped" in result.stdout
    assert (stopped / "run.json").exists() and (stopped / "model-best").is_dir()
    assert (project / "training" / "ner_elmo" / "seed0" / "run.json").stat().st_mtime_ns == finished


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_project_scaling_on_a_tiny_slice(tmp_path):
    project = copy_project(tmp_path)
    budgets = ("0.1", "0.3")
    project_run(project, "scaling", *tiny_vars(pretrain_steps=100_000, scaling_minutes=",".join(budgets)))
    table = (project / "reports" / "scaling.md").read_text().splitlines()
    tokens = []
    for minutes in budgets:
        summary = json.loads((project / "training" / "scaling" / f"bilm_{minutes}min" / "summary.json").read_text())
        assert summary["minutes"] < 2  # the budget stopped it, not the steps
        ner = json.loads((project / "metrics" / "scaling_ner" / f"bilm_{minutes}min" / "seed0.json").read_text())
        assert ner["task"] == "ner" and ner["n_docs"] == 60
        config = (project / "training" / "scaling_ner" / f"bilm_{minutes}min" / "seed0" / "model-best" / "config.cfg")
        assert f"training/scaling/bilm_{minutes}min" in config.read_text()  # NER over that budget's biLM
        row = (f"| {minutes} | {summary['step']:,} | {summary['tokens_seen']:,} | {summary['dev']['ppl']:.1f} | "
               f"{100 * ner['f']:.1f} |")
        assert row in table
        tokens.append(summary["tokens_seen"])
    assert tokens[0] < tokens[1]
    assert (project / "reports" / "scaling.png").stat().st_size > 10_000
    assert not (project / "training" / "bilm").exists()  # the scaling workflow leaves the main biLM alone
