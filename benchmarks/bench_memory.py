"""Peak RSS on one long document: does memory grow beyond the output arrays?

    python benchmarks/bench_memory.py --size tiny --tokens 250000 500000 1000000

For each length, a fresh process builds a Doc of that many tokens (the WNUT-17 corpus tokens repeated,
no sentence boundaries, so the component cuts it into windows), takes its peak RSS as the baseline, runs
the ``elmo`` component (doc cache off) and reports the growth of peak RSS next to the size of the layers
array it stored on the Doc; then the same through the bare :class:`Embedder` on the document's windows.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def worker(size: str, n_tokens: int, via: str, threads: int) -> dict:
    import itertools

    import torch

    torch.set_num_threads(threads)
    options, weights = C.weight_files(size)
    words = list(itertools.islice(itertools.cycle([w for s in C.corpus_sentences() for w in s]), n_tokens))
    if via == "pipe":
        import spacy
        from spacy.tokens import Doc

        nlp = spacy.blank("en")
        elmo = nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options), "model": {"doc_cache_size": 0}})
        nlp("warm up")
        doc = Doc(nlp.vocab, words=words)
        del words
        baseline = C.peak_rss_mb()
        doc = elmo(doc)
        output_mb = doc._.elmo_data.layers.nbytes / 2**20
    else:
        from spacy_elmo.bilm import Embedder
        from spacy_elmo.io import load_bilm

        embedder = Embedder(load_bilm(weights, options).eval())
        embedder.embed([["warm", "up"]])
        windows = [words[i : i + 128] for i in range(0, len(words), 128)]
        del words
        baseline = C.peak_rss_mb()
        outputs = embedder.embed(windows)
        output_mb = sum(o.nbytes for o in outputs) / 2**20
    peak = C.peak_rss_mb()
    return {"tokens": n_tokens, "via": via, "baseline_mb": baseline, "peak_mb": peak, "output_mb": output_mb,
            "growth_beyond_output_mb": peak - baseline - output_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(C.SIZES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--via", nargs="+", default=["pipe", "embedder"], choices=["pipe", "embedder"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.size, int(args.worker[0]), args.worker[1], args.threads)))
        return
    print(f"{args.size} biLM, {args.threads} threads, load average {C.load_average()}")
    for via in args.via:
        for n in args.tokens:
            cmd = [sys.executable, __file__, "--size", args.size, "--threads", str(args.threads), "--worker", str(n), via]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(f"{via:8s} {n:>9,} tokens: peak RSS {r['baseline_mb']:,.0f} -> {r['peak_mb']:,.0f} MB "
                  f"(+{r['peak_mb'] - r['baseline_mb']:,.0f}); output arrays {r['output_mb']:,.0f} MB; "
                  f"growth beyond them {r['growth_beyond_output_mb']:+,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
