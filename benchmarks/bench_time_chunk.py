"""In-process A/B of the LSTM's ``TIME_CHUNK`` (steps whose input products run as one multiply).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_time_chunk.py --size small --mode exact --chunks 16 8 4

The character-CNN cache is filled first, so only the LSTM (and the batching around it) is timed; the
settings take turns in every round, and each keeps its best of ``--rounds`` runs.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(C.SIZES), default="small")
    parser.add_argument("--mode", choices=("exact", "fast"), default="exact")
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 8, 4])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--sentences", type=int, default=0, help="only the first N sentences (0: all)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from spacy_elmo.bilm import Embedder, lstm
    from spacy_elmo.io import load_bilm

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.size)
    sentences = C.corpus_sentences(args.tokens)
    sentences = sentences[: args.sentences] if args.sentences else sentences
    n_tokens = sum(len(s) for s in sentences)
    embedder = Embedder(load_bilm(weights, options).eval(), precision=args.mode)
    embedder.warm_cache([w for s in sentences for w in s])
    best: Dict[int, float] = {}
    for _ in range(args.rounds):
        for chunk in args.chunks:
            lstm.TIME_CHUNK = chunk
            best[chunk] = min(best.get(chunk, float("inf")), C.best_time(lambda: embedder.embed(sentences), 1))
    print(json.dumps({"size": args.size, "mode": args.mode, "tokens": n_tokens, "load": C.load_average()}))
    for chunk, seconds in best.items():
        print(f"TIME_CHUNK {chunk:>3}: {seconds:.3f} s, {n_tokens / seconds:,.0f} tok/s")


if __name__ == "__main__":
    main()
