"""Where the memory of biLM inference goes, per model size and batch budget.

    python benchmarks/bench_peak.py --sizes tiny small original --budgets 1024 4096 8192 --tokens 20000

Each (size, budget) runs in a fresh process on the first ``--tokens`` tokens of the WNUT-17 text (as in
bench_bilm.py) through ``Embedder.embed`` (outputs kept, as a caller of ``embed`` has them) and prints
RSS at each stage: after the imports, after loading the weights (and the peak during the load), after the
first batch (the kernels' packed weight copies), and the peak of the whole run, with the outputs' own
size; ``batch_mb`` is what one batch adds at its peak beyond the weights, copies and outputs.
``--tree DIR`` runs another source tree (an old commit's worktree) the same way.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(size: str, budget: int, tokens: int, threads: int, precision: str) -> dict:
    sentences = C.corpus_sentences(tokens)
    import torch

    from spacy_elmo.bilm import Embedder
    from spacy_elmo.io import load_bilm

    torch.set_num_threads(threads)
    row: Dict[str, float] = {"imports_mb": rss_mb()}
    options, weights = C.weight_files(size)
    bilm = load_bilm(weights, options).eval()
    row["weights_mb"] = sum(p.numel() * p.element_size() for p in bilm.parameters()) / 2**20
    row["loaded_mb"], row["load_peak_mb"] = rss_mb(), C.peak_rss_mb()
    embedder = Embedder(bilm, max_batch_tokens=budget, precision=precision)
    embedder.embed([["warm", "up"]])
    row["first_batch_mb"] = rss_mb()
    outputs = embedder.embed(sentences)
    row["outputs_mb"] = sum(o.nbytes for o in outputs) / 2**20
    row["end_mb"], row["peak_mb"] = rss_mb(), C.peak_rss_mb()
    row["batch_mb"] = row["peak_mb"] - row["first_batch_mb"] - row["outputs_mb"]
    return {"size": size, "budget": budget, "precision": precision, **{k: round(v) for k, v in row.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "original"], choices=sorted(C.SIZES))
    parser.add_argument("--budgets", nargs="+", type=int, default=[1024, 4096, 8192])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="exact", choices=["exact", "fast"])
    parser.add_argument("--tree", default=None, help="a spacy-elmo source tree to run instead of this one")
    parser.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.tokens, args.threads, args.precision)))
        return
    env = dict(os.environ, PYTHONPATH=str(Path(args.tree).resolve())) if args.tree else None
    for size in args.sizes:
        for budget in args.budgets:
            argv = [a for a in sys.argv[1:]]
            out = subprocess.run([sys.executable, __file__, *argv, "--worker", size, str(budget)], env=env,
                                 check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
