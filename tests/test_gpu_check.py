"""benchmarks/gpu_check.py, the check prepared for a GPU machine, run here the way it runs there (on the CPU,
small), so that it cannot rot before a GPU is lent."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PARTS = ["env", "tests", "bilm_tiny", "bilm_small", "pipe", "train", "embed", "pretrain_bf16", "pretrain_torchrun",
         "ddp_probe"]


def test_a_failing_part_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    check = gpu_check.Check(argparse.Namespace(quick=True, out=str(tmp_path / "out"), work=str(tmp_path / "work"),
                                               sizes=None))

    def broken(check):
        raise ZeroDivisionError("planted")

    def cuda_only(check):
        raise gpu_check.Skip("no CUDA")

    def half_done(check):
        raise gpu_check.PartFailed("1 of 2 runs failed", {"runs": [{"status": "ok"}, {"status": "failed"}]})

    check.run("broken", broken)
    check.run("cuda_only", cuda_only)
    check.run("half_done", half_done)
    check.run("fine", lambda check: {"figure": 3})
    parts = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["parts"]
    assert list(parts) == ["broken", "cuda_only", "half_done", "fine"]
    assert parts["half_done"]["status"] == "failed" and parts["half_done"]["error"] == "1 of 2 runs failed"
    assert parts["half_done"]["runs"] == [{"status": "ok"}, {"status": "failed"}]
    assert parts["broken"]["status"] == "failed" and parts["broken"]["error"] == "ZeroDivisionError: planted"
    assert "planted" in parts["broken"]["traceback"]
    assert parts["cuda_only"]["status"] == "skipped: no CUDA"
    assert parts["fine"]["status"] == "ok" and parts["fine"]["figure"] == 3
    assert all(part["seconds"] >= 0 for part in parts.values())


@pytest.mark.slow
def test_quick_cpu_run_has_every_part_and_its_figures(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    parts = result["parts"]
    assert list(parts) == PARTS
    assert {name: part["status"] for name, part in parts.items()} == {name: "ok" for name in PARTS}, \
        {name: part.get("error") for name, part in parts.items()}
    assert result["device"] == "cpu" and parts["env"]["gpu"] == "skipped: no CUDA"
    tests = parts["tests"]
    assert tests["tests"] > 10 and tests["failures"] == tests["errors"] == 0 and tests["failed_tests"] == []
    assert tests["cuda_tests"] and all(case.endswith(": skipped") for case in tests["cuda_tests"])
    for size in ("tiny", "small"):
        runs = parts[f"bilm_{size}"]["runs"]
        # the graph switch only where batches fit its limit (8192 padded tokens)
        assert [(r["mode"], r["budget"]) for r in runs] == [
            (m, 4096) for m in ("exact", "fast", "exact+graphs", "fast+graphs")] + [(m, 16384) for m in ("exact", "fast")]
        for run in runs:
            assert run["status"] == "ok" and run["tokens_per_s"] > 0 and run["cuda_memory"] == "skipped: no CUDA"
            assert ("first_pass_tokens_per_s" in run) == run["mode"].endswith("+graphs")
            # exact on the CPU at any budget is the CPU exact path: batch-mates change nothing; the graph switch
            # runs the plain path (as CUDA does), within exact mode's 1e-4 of the kernels
            bound = {"exact": 1e-5, "exact+graphs": 1e-4}.get(run["mode"], 1.0)
            assert 0 <= run["max_abs_diff_from_cpu_exact"] <= bound, run
    assert parts["pipe"]["exact_tokens_per_s"] > 0 and parts["pipe"]["fast_tokens_per_s"] > 0
    assert parts["train"]["gpu_id"] == -1 and "ents_f" in parts["train"]["performance"]
    for mode in ("exact", "fast"):
        assert parts["embed"][mode]["tokens"] >= 10_000
    for name in ("pretrain_bf16", "pretrain_torchrun"):
        assert parts[name]["steps"] == 10 and parts[name]["precision"] == "bfloat16" and parts[name]["tokens_per_s"] > 0
    # one process under torchrun: the same seed gives the same run as without it
    assert parts["pretrain_torchrun"]["train"]["loss"] == parts["pretrain_bf16"]["train"]["loss"]
    assert parts["ddp_probe"]["backend"] == "gloo" and parts["ddp_probe"]["all_reduce"] == [1.0, 1.0, 1.0]
    assert parts["ddp_probe"]["grad_norm"] > 0 and parts["ddp_probe"]["ddp_grad_max_abs_diff_from_plain"] <= 1e-6
