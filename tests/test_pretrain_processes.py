"""Pretraining across processes: SIGKILL and resume, and 2-process gloo DistributedDataParallel."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TINY, subprocess_env, synthetic_corpus

COMMON = ["--max-length", "30", "--vocab-size", "100", "--min-count", "1", "--warmup-steps", "5", "--log-every", "1",
          "--eval-every", "1000", "--threads", "1", "-c", str(TINY)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synthetic_corpus(tmp_path_factory.mktemp("corpus"), 2000)


def command(*args: str):
    return [sys.executable, "-m", "spacy_elmo", "pretrain", *args, *COMMON]


def log_losses(output: Path):
    records = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def logged_steps(output: Path) -> int:
    try:
        return len((output / "log.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


# bfloat16 is emulated on CPUs without native bfloat16 products: its runs are in the slow suite
PRECISIONS = pytest.mark.parametrize("precision", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])


@PRECISIONS
def test_sigkill_then_resume_gives_the_same_losses(corpus, tmp_path, precision):
    args = [str(corpus), "--max-steps", "80", "--checkpoint-every", "10", "-b", "512", "--precision", precision]
    subprocess.run(command(*args, "-o", str(tmp_path / "whole")), check=True, env=subprocess_env(), capture_output=True, timeout=300)
    proc = subprocess.Popen(command(*args, "-o", str(tmp_path / "killed")), env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while logged_steps(tmp_path / "killed") < 25 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = max(log_losses(tmp_path / "killed"))
    assert killed_at < 80
    resumed = subprocess.run(command(*args, "-o", str(tmp_path / "killed"), "--resume"), env=subprocess_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = int(resumed.stdout.split("Resuming at step ")[1].split()[0])
    assert 0 < start <= killed_at and start % 10 == 0
    whole, after = log_losses(tmp_path / "whole"), log_losses(tmp_path / "killed")
    n_logged = sum('"loss"' in line for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines())
    assert sorted(after) == list(range(1, 81)) and n_logged == 80  # the killed run's extra steps trimmed
    assert after == whole  # bit for bit, before and after the kill


@PRECISIONS
def test_two_process_gloo_ddp_matches_one_process(corpus, tmp_path, precision):
    args = [str(corpus), "--max-steps", "4", "--dropout", "0", "--checkpoint-every", "1000", "--precision", precision]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "spacy_elmo",
         "pretrain", *args, *COMMON, "-b", "256", "-o", str(tmp_path / "ddp")],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 process(es)" in ddp.stdout
    single = subprocess.run(command(*args, "-b", "512", "-o", str(tmp_path / "one")), env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    two, one = log_losses(tmp_path / "ddp"), log_losses(tmp_path / "one")
    assert sorted(two) == sorted(one) == [1, 2, 3, 4]
    # bfloat16 rounds each product, whose sums run in another order over another batch shape
    rel = 1e-5 if precision == "float32" else 2e-3
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=rel, abs=1e-6)
    assert one[4] != one[1]  # the steps really trained


def test_two_process_time_limited_run_ends_annealed(corpus, tmp_path):
    """The time budget's share spent, measured by the main process, drives both ranks' learning rate."""
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "spacy_elmo",
         "pretrain", str(corpus), "--max-steps", "100000", "--max-minutes", "0.15", "--learning-rate", "0.01",
         *COMMON, "-b", "256", "-o", str(tmp_path / "ddp")],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if "lr" in r]
    assert 5 < len(rates) < 100000 and rates[-1] <= 1.5 * 0.1 * 0.01  # final_lr 0.1 of 0.01, and half of it
