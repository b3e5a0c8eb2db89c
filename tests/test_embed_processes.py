"""``embed`` across processes: SIGKILL then ``--resume`` gives the files of an uninterrupted run, and two
gloo processes under torchrun give the files of one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import subprocess_env, synthetic_corpus



@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synthetic_corpus(tmp_path_factory.mktemp("embed_corpus"), 600)


def args(corpus: Path, tiny_files, output: Path, *extra: str):
    options, weights = tiny_files
    return ["embed", str(corpus), "-w", str(weights), "-c", str(options), "-o", str(output), "--shard-lines", "40",
            "--chunk-tokens", "300", "--threads", "1", "--device", "cpu", *extra]


def files(output: Path):
    """Every file the run left, by path, with its bytes (the manifest parsed)."""
    out = {}
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out[str(path.relative_to(output))] = json.loads(data) if path.name == "manifest.json" else data
    return out


def test_sigkill_then_resume_gives_the_files_of_an_uninterrupted_run(corpus, tiny_files, tmp_path):
    whole = subprocess.run([sys.executable, "-m", "spacy_elmo", *args(corpus, tiny_files, tmp_path / "whole")],
                           env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "spacy_elmo", *args(corpus, tiny_files, killed)], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(list((killed / ".progress").glob("*.json"))) < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    n_done = len(list((killed / ".progress").glob("*.json")))
    assert 4 <= n_done < 15 and not json.loads((killed / "manifest.json").read_text())["complete"]
    resumed = subprocess.run([sys.executable, "-m", "spacy_elmo", *args(corpus, tiny_files, killed, "--resume")],
                             env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"15 shard(s), {n_done} already done" in resumed.stdout
    assert files(killed) == files(tmp_path / "whole")  # bit for bit, temporary files of the killed run gone


def test_two_gloo_processes_give_the_files_of_one(corpus, tiny_files, tmp_path):
    one = subprocess.run([sys.executable, "-m", "spacy_elmo", *args(corpus, tiny_files, tmp_path / "one")],
                         env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "spacy_elmo", *args(corpus, tiny_files, tmp_path / "two")],
                         env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes" in two.stdout
    assert files(tmp_path / "two") == files(tmp_path / "one")
    records = [json.loads(p.read_text()) for p in (tmp_path / "two" / ".progress").glob("*.json")]
    assert len(records) == 15
