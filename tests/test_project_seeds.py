"""The project's runs over seeds and time budgets, without training: the report's mean and spread against numpy
on metrics files written here, the scaling report on summaries written here, and how a repeated run skips,
resumes and reruns (scripts/runs.py)."""
import json
import sys
from pathlib import Path

import numpy
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import report  # noqa: E402
import runs  # noqa: E402
import scaling_report  # noqa: E402

SEEDS = (0, 3, 7)


def write_metrics(root: Path, seeds, rng) -> dict:
    """Metrics files as scripts/evaluate.py writes them, with random scores; ``{run: [metrics per seed]}``."""
    written = {}
    for run in ("ner_baseline", "ner_elmo", "textcat_baseline", "textcat_elmo"):
        written[run] = []
        for seed in seeds:
            if run.startswith("ner"):
                p, r = rng.uniform(0.05, 0.6, 2)
                scores = {"task": "ner", "p": p, "r": r, "f": 2 * p * r / (p + r),
                          "per_type": {"person": {"p": p, "r": r, "f": rng.uniform()}}}
            else:
                scores = {"task": "textcat", "accuracy": rng.uniform(0.8, 0.95), "macro_f": rng.uniform(0.8, 0.95)}
            scores.update(n_docs=60, words_per_second=1000.0, model=f"training/{run}/seed{seed}/model-best")
            path = root / run / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(scores))
            written[run].append(scores)
    return written


def test_report_mean_and_spread_over_seeds_match_numpy(tmp_path):
    written = write_metrics(tmp_path, SEEDS, numpy.random.default_rng(0))
    summary = report.score_summary(report.load_metrics(tmp_path, SEEDS))
    for task, score in [("ner", "p"), ("ner", "r"), ("ner", "f"), ("textcat", "accuracy"), ("textcat", "macro_f")]:
        base = numpy.array([m[score] for m in written[f"{task}_baseline"]])
        elmo = numpy.array([m[score] for m in written[f"{task}_elmo"]])
        for row, values in (("baseline", base), ("elmo", elmo), ("elmo_minus_baseline", elmo - base)):
            got = summary[task][score][row]
            assert got["by_seed"] == pytest.approx(values, abs=1e-15)
            assert got["mean"] == pytest.approx(values.mean(), abs=1e-15)
            assert (got["min"], got["max"]) == pytest.approx((values.min(), values.max()), abs=1e-15)
            assert got["sd"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    # the markdown row: percent, one decimal
    f = numpy.array([m["f"] for m in written["ner_elmo"]]) - numpy.array([m["f"] for m in written["ner_baseline"]])
    row = f"| F | ELMo − baseline | {100 * f.mean():.1f} | {100 * f.min():.1f} – {100 * f.max():.1f} | " \
          f"{100 * f.std(ddof=1):.1f} | " + " | ".join(f"{100 * v:.1f}" for v in f) + " |"
    lines = report.score_lines("ner", summary["ner"], SEEDS)
    assert row in lines
    assert lines[0] == "| score | run | mean | min – max | sd | seed 0 | seed 3 | seed 7 |"


def test_one_seed_has_no_standard_deviation(tmp_path):
    write_metrics(tmp_path, [2], numpy.random.default_rng(1))
    summary = report.score_summary(report.load_metrics(tmp_path, [2]))
    assert summary["textcat"]["accuracy"]["elmo"]["sd"] is None
    assert all(line.split(" | ")[4] == "–" for line in report.score_lines("textcat", summary["textcat"], [2])[2:])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=8))
def test_spread_matches_numpy(values):
    got = report.spread(values)
    assert got["mean"] == pytest.approx(numpy.mean(values), abs=1e-12)
    assert (got["min"], got["max"]) == (min(values), max(values))
    assert got["sd"] == pytest.approx(numpy.std(values, ddof=1), abs=1e-12)


def test_a_missing_seed_is_named(tmp_path):
    write_metrics(tmp_path, [0], numpy.random.default_rng(2))
    with pytest.raises(SystemExit, match=r"ner_baseline/seed1\.json: missing \(evaluate seed 1 of ner_baseline"):
        report.load_metrics(tmp_path, [0, 1])


def test_comma_lists():
    assert runs.parse_list("0, 1,2", int, "--seeds") == [0, 1, 2]
    assert runs.parse_list("6,18,54", float, "--minutes") == [6.0, 18.0, 54.0]
    assert [runs.budget_name(m) for m in (6.0, 0.5)] == ["bilm_6min", "bilm_0.5min"]
    for bad in ("", "0,0", "a,1"):
        with pytest.raises(typer.BadParameter, match="--seeds"):
            runs.parse_list(bad, int, "--seeds")


def write_summary(path: Path, step: int, tokens: int, ppl) -> None:
    """A summary.json with the keys a finished pretraining writes."""
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({
        "step": step, "tokens_seen": tokens, "unigram_ppl": 700.0, "minutes": 1.0, "train": {},
        "dev": {} if ppl is None else {"ppl": ppl, "loss": 5.0}}))


def test_scaling_report_table(tmp_path):
    budgets = {"0.5": (10, 2_000, 400.0, 0.05), "1.5": (30, 6_000, 250.0, 0.08), "4.5": (90, 18_000, None, 0.1)}
    for minutes, (step, tokens, ppl, f) in budgets.items():
        write_summary(tmp_path / "bilms" / f"bilm_{minutes}min", step, tokens, ppl)
        (tmp_path / "metrics" / f"bilm_{minutes}min").mkdir(parents=True)
        (tmp_path / "metrics" / f"bilm_{minutes}min" / "seed0.json").write_text(json.dumps({"task": "ner", "f": f}))
    scaling_report.main(minutes=",".join(budgets), bilms=tmp_path / "bilms", metrics=tmp_path / "metrics", seed=0,
                        output=tmp_path / "reports")
    table = (tmp_path / "reports" / "scaling.md").read_text().splitlines()
    assert "| 0.5 | 10 | 2,000 | 400.0 | 5.0 |" in table
    assert "| 1.5 | 30 | 6,000 | 250.0 | 8.0 |" in table
    assert "| 4.5 | 90 | 18,000 | – | 10.0 |" in table  # a run without held-out text
    assert (tmp_path / "reports" / "scaling.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match=r"bilm_2min/seed0\.json: missing"):
        scaling_report.main(minutes="2", bilms=tmp_path / "bilms", metrics=tmp_path / "metrics", seed=0,
                            output=tmp_path / "reports")


# a run that writes its folder: a copy of its input file, and a leftover check
WRITE = ("import pathlib, sys; out = pathlib.Path(sys.argv[2]); out.mkdir(); "
         "(out / 'copy').write_bytes(pathlib.Path(sys.argv[1]).read_bytes())")


def test_a_run_is_skipped_resumed_and_rerun(tmp_path, capsys):
    data, folder = tmp_path / "data.txt", tmp_path / "out"
    data.write_text("one")
    command = ["-c", WRITE, str(data), str(folder)]
    assert runs.run_once(command, folder, [str(data)])
    assert (folder / "copy").read_text() == "one"
    assert not runs.run_once(command, folder, [str(data)])  # finished with the same command and input
    assert "finished with these settings and inputs, skipped" in capsys.readouterr().out
    data.write_text("two")  # a changed input reruns from scratch
    assert runs.run_once(command, folder, [str(data)])
    assert (folder / "copy").read_text() == "two"
    (folder / runs.STAMP).unlink()  # as if it had stopped before the end: it runs again, in a clean folder
    (folder / "leftover").write_text("")
    assert runs.run_once(command, folder, [str(data)])
    assert not (folder / "leftover").exists()
    assert runs.run_once([*command, "--changed"], folder, [str(data)])  # a changed command line reruns


def test_a_failed_run_is_not_marked_finished(tmp_path):
    folder = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"out: the run failed \(exit status 3\)"):
        runs.run_once(["-c", f"import os, sys; os.mkdir({str(folder)!r}); sys.exit(3)"], folder, [])
    assert folder.is_dir() and not (folder / runs.STAMP).exists()


def test_report_mean_curve_is_taken_at_the_steps_every_seed_evaluated():
    logs = [[{"step": 0, "score": 0.1}, {"step": 200, "score": 0.5}, {"step": 400, "score": 0.7}],
            [{"step": 0, "score": 0.3}, {"step": 200, "score": 0.1}],
            []]  # a seed without a log (stopped before its first evaluation) does not take part
    steps, mean = report.mean_curve(logs)
    assert steps == [0, 200]
    assert mean == pytest.approx([0.2, 0.3])
    assert report.mean_curve([[], []]) == ([], [])


def test_report_picture_labels_layers_by_integer(tmp_path, monkeypatch):
    log = [{"step": s, "score": s / 10} for s in range(3)]
    logs = {run: [log, log] for pair in report.RUNS.values() for run in pair}
    mixes = {run: [{run.split("_")[0]: {"s": [0.2, 0.5, 0.3], "gamma": 1.0}}] * 2 for run in ("ner_elmo", "textcat_elmo")}
    captured = {}
    original = report.plt.Figure.savefig

    def keep(fig, path, **kwargs):
        captured["labels"] = [t.get_text() for t in fig.axes[2].get_xticklabels()]
        captured["widths"] = sorted({line.get_linewidth() for line in fig.axes[0].get_lines()})
        return original(fig, path, **kwargs)

    monkeypatch.setattr(report.plt.Figure, "savefig", keep)
    report.plot(logs, mixes, 2, tmp_path / "report.png")
    assert captured["labels"] == ["0", "1", "2"]
    assert captured["widths"][0] < captured["widths"][-1]  # thin seeds, bold mean
    assert (tmp_path / "report.png").stat().st_size > 0
