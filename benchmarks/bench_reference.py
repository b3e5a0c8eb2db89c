"""AllenNLP 2.10.1's ELMo biLM on a published-layout weight file: tokens/s and its layers.

Runs in the reference's own venv (see ``../shared/reference/README.md`` beside the checkout), started by
bench_bilm.py:

    /tmp/refenv/bin/python benchmarks/bench_reference.py SIZE_DIR SENTENCES.json OUT.npz --threads 2

Batches of ``--batch`` sentences in corpus order, LSTM states reset before every batch (AllenNLP is
stateful otherwise). Prints one JSON line; writes the layers of the first ``--keep`` sentences.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import List

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"  # ../shared beside the checkout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("size_dir", type=Path)
    parser.add_argument("sentences", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", type=int, default=200)
    args = parser.parse_args()

    import numpy
    import torch

    if not (REFERENCE / "ref_import.py").exists():
        sys.exit(f"bench_reference.py: the reference is not at {REFERENCE} (../shared/reference beside the checkout)")
    sys.path.insert(0, str(REFERENCE))
    import ref_import

    torch.set_num_threads(args.threads)
    _, ElmoBiLm, batch_to_ids, _ = ref_import.load()
    sentences = json.loads(args.sentences.read_text())
    bilm = ElmoBiLm(str(args.size_dir / "options.json"), str(args.size_dir / "weights.hdf5"), requires_grad=False)
    bilm.eval()
    kept: List[numpy.ndarray] = []

    def run(keep: bool) -> None:
        for start in range(0, len(sentences), args.batch):
            batch = sentences[start : start + args.batch]
            bilm._elmo_lstm.reset_states()
            output = bilm(batch_to_ids(batch))
            if keep and len(kept) < args.keep:
                layers = torch.stack(output["activations"])  # [L, B, T + 2, 2P], sentence marks included
                for b, words in enumerate(batch):
                    kept.append(layers[:, b, 1 : len(words) + 1].numpy())

    best = float("inf")
    with torch.no_grad():
        for repeat in range(args.repeats):
            begin = time.perf_counter()
            run(keep=repeat == 0)
            best = min(best, time.perf_counter() - begin)
    kept = kept[: args.keep]
    numpy.savez(args.out, *kept)
    n_tokens = sum(len(s) for s in sentences)
    print(json.dumps({"tokens": n_tokens, "seconds": best, "tokens_per_s": n_tokens / best,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
