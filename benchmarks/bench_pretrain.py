"""Pretraining speed against the hardware's roofline, old way against new way, and the held-out
perplexity that each reaches after the same tokens.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pretrain.py --old f42bda0

Every run is the real command, ``python -m spacy_elmo pretrain`` under torchrun (``--processes``
gloo processes of one thread each, as the project runs it), on the project's raw text. The old way is
the package at ``--old`` (a git revision, extracted with ``git archive`` and put first on
``PYTHONPATH``); the new way is this checkout. Old and new take turns, ``--repeats`` times.

* ``roofline``: the float32 (and, where the CPU has them natively, bfloat16) product speed of one
  core, a 1024 x 1024 x 1024 matrix product on one thread, times ``--processes``.
* ``speed``: tokens/s (targets of both directions count once, as ``pretrain`` logs them) over
  ``--steps`` steps after ``--warmup`` steps, and the achieved GFLOP/s: tokens/s times the published
  computation's FLOP per token (forward and backward, 3 x the forward's multiply-adds x 2, counted on
  the run's own batches: the character CNN over all 50 positions of every distinct word, highway and
  projection, the LSTM over every real position, the adaptive softmax's head and the tails its
  targets use). bfloat16 runs only where the CPU has native bfloat16 products (``--bf16`` forces it:
  emulated, many times slower).
* ``quality``: held-out perplexity after ``--quality-steps`` steps (the same batches, so the same
  tokens) for old float32, new float32 and new bfloat16 (where it runs).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # annotations only: the functions import the package when they run
    from spacy_elmo.pretraining.batches import Batch
    from spacy_elmo.pretraining.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "raw"
TEXTS = [DATA / "wnut17_raw_minus_devtest.txt", DATA / "intent_utterances.txt"]
OPTIONS = {"cpu": ROOT / "configs" / "bilm_cpu.json", "small": ROOT / "configs" / "bilm_small.json"}
# the project's pretraining settings (project.yml), less the time budget
PRETRAIN = ["--lang", "en", "--batch-tokens", "1024", "--learning-rate", "4e-3", "--warmup-steps", "100",
            "--threads", "1", "--log-every", "10", "--checkpoint-every", "100000", "--heldout", "0.01",
            "--dev-max-sequences", "1000"]


def peak_gflops(dtype_name: str) -> float:
    import torch

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(1024, 1024).to(dtype), torch.randn(1024, 1024).to(dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9


def first_batches(texts: List[Path], n_batches: int, budget: int = 1024) -> Tuple["Vocab", List["Batch"]]:
    """The vocabulary and the first ``n_batches`` batches (tensors) that ``pretrain`` trains on, as the project
    runs it (``budget`` padded tokens a batch)."""
    import itertools

    from spacy_elmo.pretraining.batches import BatchStream, CharIdCache, Position, tensorize
    from spacy_elmo.pretraining.corpus import Tokenizer
    from spacy_elmo.pretraining.scan import scan
    from spacy_elmo.pretraining.vocab import Vocab

    tokenizer = Tokenizer("en", 100)
    data = scan(texts, tokenizer, 0.01, None, 10)
    vocab = Vocab.build(data.counts, data.n_sequences, 50_000, 2)
    stream = BatchStream(texts, tokenizer, budget, 0, 0.01).start(Position())
    chars = CharIdCache()
    return vocab, [tensorize(group, vocab, chars) for _, group in itertools.islice(stream, n_batches)]


def flops_per_token(options_path: Path, texts: List[Path], n_batches: int = 30) -> float:
    """Forward + backward FLOP per target token of the published computation, on the run's first batches."""
    import torch

    from spacy_elmo.bilm.options import BiLMOptions
    from spacy_elmo.pretraining.softmax import DIV_VALUE, default_cutoffs

    opts = BiLMOptions.from_file(options_path)
    cnn, lstm = opts.char_cnn, opts.lstm
    vocab, batches = first_batches(texts, n_batches)
    cutoffs = default_cutoffs(len(vocab)) + [len(vocab)]
    macs = targets = 0.0
    filters = sum((50 - w + 1) * cnn.embedding_dim * w * n for w, n in cnn.filters)
    token_layers = cnn.n_highway * cnn.n_filters * 2 * cnn.n_filters + cnn.n_filters * lstm.projection_dim
    step = (lstm.projection_dim + lstm.projection_dim) * 4 * lstm.dim + lstm.dim * lstm.projection_dim
    for batch in batches:
        n = batch.n_targets
        macs += batch.char_ids.shape[0] * (filters + token_layers)
        macs += int(batch.lengths.sum()) * 2 * lstm.n_layers * step
        steps = batch.index.shape[1]
        mask = torch.arange(steps - 1).unsqueeze(0) < (batch.lengths - 1).unsqueeze(1)
        ids = [batch.word_ids[:, 1:][mask], batch.word_ids[:, :-1][mask]]  # both directions' targets
        macs += 2 * n * lstm.projection_dim * (cutoffs[0] + len(cutoffs) - 1)
        for k in range(len(cutoffs) - 1):
            hidden = int(lstm.projection_dim // DIV_VALUE ** (k + 1))
            size = cutoffs[k + 1] - cutoffs[k]
            used = sum(int(((t >= cutoffs[k]) & (t < cutoffs[k + 1])).sum()) for t in ids)
            macs += used * (lstm.projection_dim * hidden + hidden * size)
        targets += n
    return 3 * 2 * macs / targets


def run_pretrain(tree: Optional[Path], options: Path, output: Path, steps: int, processes: int,
                 precision: Optional[str], eval_every: int) -> Dict[str, object]:
    """One ``pretrain`` run; its log and summary."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "spacy_elmo", "pretrain", *map(str, TEXTS), "--options", str(options), "--output", str(output),
               "--max-steps", str(steps), "--eval-every", str(eval_every), *PRETRAIN]
    if precision is not None:
        command += ["--precision", precision]
    done = subprocess.run(command, env=env, cwd=output.parent, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pretrain failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    log = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines() if line]
    return {"log": log, "summary": json.loads((output / "summary.json").read_text())}


def tokens_per_s(log: List[dict], warmup: int) -> float:
    windows = [r for r in log if "tokens_per_s" in r and r["step"] > warmup]
    return sum(r["tokens_per_s"] for r in windows) / len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="f42bda0", help="git revision of the old way")
    parser.add_argument("--sizes", nargs="+", default=["cpu", "small"], choices=sorted(OPTIONS))
    parser.add_argument("--parts", nargs="+", default=["roofline", "speed", "quality"])
    parser.add_argument("--steps", type=int, default=40, help="timed steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quality-steps", type=int, default=150)
    parser.add_argument("--bf16", action="store_true", help="run bfloat16 even where it is emulated")
    args = parser.parse_args()

    import torch

    from spacy_elmo.bilm.precision import native_bfloat16

    native = native_bfloat16(torch.device("cpu"))
    precisions = ["float32"] + (["bfloat16"] if native or args.bf16 else [])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, native bfloat16: {native}; old = {args.old}")
    if "roofline" in args.parts:
        for name in ["float32"] + (["bfloat16"] if native else []):
            peak = peak_gflops(name)
            print(f"roofline {name}: {peak:.1f} GFLOP/s on one thread, {peak * args.processes:.1f} "
                  f"on {args.processes} processes")
    with tempfile.TemporaryDirectory() as scratch:
        old_tree = Path(scratch) / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old, "spacy_elmo"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        ways = {"old": old_tree, "new": None}
        if "speed" in args.parts:
            for size in args.sizes:
                flop = flops_per_token(OPTIONS[size], TEXTS)
                print(f"{size}: {flop / 1e6:.1f} MFLOP per token (forward and backward)")
                results: Dict[str, List[float]] = {}
                for repeat in range(args.repeats):
                    for precision in precisions:
                        for way, tree in ways.items():
                            if way == "old" and precision != "float32":
                                continue  # the old way had no bfloat16 on CPU
                            output = Path(scratch) / f"{size}-{way}-{precision}-{repeat}"
                            run = run_pretrain(tree, OPTIONS[size], output, args.warmup + args.steps,
                                               args.processes, None if way == "old" else precision, 100000)
                            speed = tokens_per_s(run["log"], args.warmup)  # type: ignore[arg-type]
                            results.setdefault(f"{way} {precision}", []).append(speed)
                            print(f"  {size} {way:3} {precision:8} round {repeat}: {speed:,.0f} tokens/s, "
                                  f"{speed * flop / 1e9:.1f} GFLOP/s", flush=True)
                base = max(results["old float32"])
                for key, speeds in results.items():
                    best = max(speeds)
                    print(f"{size} {key}: best {best:,.0f} tokens/s ({best * flop / 1e9:.1f} GFLOP/s), "
                          f"{best / base:.2f}x the old way")
        if "quality" in args.parts:
            for size in args.sizes[:1]:
                for way, tree in ways.items():
                    for precision in precisions if way == "new" else ["float32"]:
                        output = Path(scratch) / f"quality-{size}-{way}-{precision}"
                        run = run_pretrain(tree, OPTIONS[size], output, args.quality_steps, args.processes,
                                           None if way == "old" else precision, args.quality_steps)
                        summary = run["summary"]
                        dev = summary["dev"]  # type: ignore[index]
                        print(f"quality {size} {way} {precision}: after {summary['step']} steps, "  # type: ignore[index]
                              f"{summary['tokens_seen']:,} tokens: held-out perplexity {dev['ppl']:.3f} "  # type: ignore[index]
                              f"(forward {dev['fwd_ppl']:.3f}, backward {dev['bwd_ppl']:.3f})", flush=True)


if __name__ == "__main__":
    main()
