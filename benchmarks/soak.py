"""Long runs: RSS and tokens/s sampled along a stream of real text, old code against new, in one run.

    python benchmarks/soak.py --size small --tokens 5000000 --paths embedder pipe embed \\
        --tree new=. --tree old=/tmp/spacy-elmo-1f7775c

Each ``--tree NAME=DIR`` is a source tree of spacy-elmo (for an old commit: ``git worktree add
/tmp/spacy-elmo-1f7775c 1f7775c``); every (path, tree) pair runs in a fresh process of this Python with
that tree first on ``sys.path``, one after the other. The text is the WNUT-17 raw corpus (one tweet a
line, 1 to 100+ tokens), read again from the top as often as needed, whitespace-tokenised for the bare
biLM and ``embed --tokenized``, and as text for ``nlp.pipe``:

* ``embedder``: ``Embedder.embed`` on consecutive lines of about ``--batch-tokens`` tokens, outputs dropped;
* ``pipe``: ``nlp.pipe`` of a blank English pipeline with the ``elmo`` component (Doc cache off, since the
  text repeats), the Docs dropped as they come (``--docs`` caps the count);
* ``embed``: the CLI on a file of ``--tokens`` tokens (``--layers average --dtype float16``), its RSS read
  from /proc every half second; tokens seen are estimated from the elapsed time.

RSS is sampled every ``--every`` tokens (embedder, pipe). Results go to ``--out`` as JSON (and a PNG of
RSS against tokens when matplotlib is present); the summary table prints RSS at 500k tokens, at the end,
the change between them, and tokens/s over the whole run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

MARK = 500_000


def rss_mb(pid: str = "self") -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def lines(limit_words: int = 120) -> Iterator[str]:
    """The corpus lines, over and over (a line cut at ``limit_words`` words)."""
    while True:
        with C.CORPUS.open(encoding="utf8") as f:
            for line in f:
                words = line.split()
                if words:
                    yield " ".join(words[:limit_words])


def run_embedder(args: argparse.Namespace) -> List[dict]:
    import torch

    from spacy_elmo.bilm import Embedder
    from spacy_elmo.io import load_bilm

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.size)
    embedder = Embedder(load_bilm(weights, options).eval(), max_batch_tokens=args.batch_tokens)
    samples: List[dict] = []
    source = lines()
    seen, next_sample, start = 0, 0, time.perf_counter()
    while seen < args.tokens:
        batch, n = [], 0
        while n < args.batch_tokens:
            words = next(source).split()
            batch.append(words)
            n += len(words)
        embedder.embed(batch)
        seen += n
        if seen >= next_sample:
            samples.append({"tokens": seen, "rss_mb": rss_mb(), "seconds": time.perf_counter() - start})
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)  # a long run stopped early keeps its samples
            next_sample += args.every
    return samples


def run_pipe(args: argparse.Namespace) -> List[dict]:
    import spacy
    import torch

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.size)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                 "model": {"doc_cache_size": 0, "max_batch_tokens": args.batch_tokens}})
    samples: List[dict] = []
    source = lines()

    def texts() -> Iterator[str]:
        for _ in range(args.docs):
            yield next(source)

    seen, next_sample, start = 0, 0, time.perf_counter()
    for doc in nlp.pipe(texts(), batch_size=128):
        seen += len(doc)
        if seen >= next_sample:
            samples.append({"tokens": seen, "rss_mb": rss_mb(), "seconds": time.perf_counter() - start})
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)  # a long run stopped early keeps its samples
            next_sample += args.every
        if seen >= args.tokens:
            break
    return samples


def run_embed(args: argparse.Namespace) -> List[dict]:
    options, weights = C.weight_files(args.size)
    work = Path(tempfile.mkdtemp(prefix="soak_embed_"))
    corpus = work / "corpus.txt"
    total = 0
    with corpus.open("w", encoding="utf8") as f:
        for line in lines():
            f.write(line + "\n")
            total += len(line.split())
            if total >= args.tokens:
                break
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, "-m", "spacy_elmo", "embed", str(corpus), "-w", str(weights), "-c", str(options),
               "-o", str(work / "out"), "--tokenized", "--layers", "average", "--dtype", "float16",
               "--batch-tokens", str(args.batch_tokens)]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: List[tuple] = []
    while child.poll() is None:
        try:
            times.append((time.perf_counter() - start, rss_mb(str(child.pid))))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"embed failed ({child.returncode}): {' '.join(command)}")
    subprocess.run(["rm", "-rf", str(work)], check=False)
    # tokens seen estimated from the elapsed time (the model load counts as the first seconds)
    return [{"tokens": int(total * t / elapsed), "rss_mb": r, "seconds": t} for t, r in times]


RUNNERS = {"embedder": run_embedder, "pipe": run_pipe, "embed": run_embed}


def at(samples: List[dict], tokens: int) -> dict:
    return next((s for s in samples if s["tokens"] >= tokens), samples[-1])


def summary(samples: List[dict]) -> Dict[str, float]:
    mark, last = at(samples, MARK), samples[-1]
    return {"tokens": last["tokens"], "rss_at_500k_mb": round(mark["rss_mb"]), "rss_end_mb": round(last["rss_mb"]),
            "growth_after_500k_pct": round(100 * (last["rss_mb"] / mark["rss_mb"] - 1), 1),
            "peak_mb": round(max(s["rss_mb"] for s in samples)),
            "tokens_per_s": round(last["tokens"] / last["seconds"])}


def plot(results: Dict[str, List[dict]], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, samples in results.items():
        ax.plot([s["tokens"] / 1e6 for s in samples], [s["rss_mb"] for s in samples], label=name)
    ax.set_xlabel("tokens (millions)")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(C.SIZES))
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--docs", type=int, default=200_000, help="most Docs for the pipe path")
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths", nargs="+", default=["embedder"], choices=sorted(RUNNERS))
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="a source tree to run (repeat); default: this one, as 'new'")
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        json.dump(RUNNERS[args.worker[0]](args), open(args.worker[1], "w"))
        return
    trees = dict(t.split("=", 1) for t in args.tree) or {"new": str(C.ROOT)}
    results: Dict[str, List[dict]] = {}
    for path in args.paths:
        for name, tree in trees.items():
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
                argv = [a for a in sys.argv[1:]]
                subprocess.run([sys.executable, __file__, *argv, "--worker", path, out.name], env=env, check=True)
                results[f"{path} {name}"] = json.load(open(out.name))
            print(json.dumps({"run": f"{path} {name}", **summary(results[f"{path} {name}"])}), flush=True)
    record = {"size": args.size, "tokens": args.tokens, "batch_tokens": args.batch_tokens, "threads": args.threads,
              "trees": trees, "load": C.load_average(), "summary": {k: summary(v) for k, v in results.items()},
              "samples": results}
    args.out.write_text(json.dumps(record, indent=1))
    plot(results, args.out.with_suffix(".png"), f"{args.size}: RSS along the stream")


if __name__ == "__main__":
    main()
