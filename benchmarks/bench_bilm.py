"""Speed of the biLM: tokens/s of exact and fast mode, of ``nlp.pipe``, and of the AllenNLP reference.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_bilm.py --sizes tiny small original --threads 2

For each size, random weights in the published layout (written once under /tmp/spacy_elmo_bench), the
first ``--tokens`` spaCy tokens of the WNUT-17 raw text split into sentences, ``--threads`` torch threads.
Each size runs in its own process (so peak RSS is its own); every variant is the best of ``--repeats``
runs, taken in turns, each from a cold character-CNN cache; the "warm" runs first fill the cache with
the ``--warm-tokens`` of text that follow (not the measured text), as a long-running pipeline would
have it. With ``--reference`` (the Python of a venv holding allennlp 2.10.1, see
``../shared/reference/README.md`` beside the checkout) the reference runs the same file on the same
sentences, and the max abs difference between its layers and ours is printed too.

``OMP_WAIT_POLICY=PASSIVE`` matters on a shared machine: OpenMP threads that spin while they wait take
the cores from the threads that have work (see benchmarks/README.md).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def worker(args: argparse.Namespace) -> None:
    """One size, in this process: bare exact and fast, their drift, and ``nlp.pipe``. The variants take
    turns in every repeat, so that a change of machine load hits them alike; each keeps its best time."""
    import numpy
    import torch

    from spacy_elmo.bilm import Embedder
    from spacy_elmo.io import load_bilm

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.worker)
    sentences = json.loads(Path(args.sentences).read_text())
    n_tokens = sum(len(s) for s in sentences)
    bilm = load_bilm(weights, options).eval()
    warm_words = [w for sentence in json.loads(Path(args.warm_text).read_text()) for w in sentence]
    outputs: Dict[str, List[numpy.ndarray]] = {}
    runs: Dict[str, Tuple[int, Callable[[], None], Callable[[], None]]] = {}  # tokens, untimed setup, timed run
    for mode in args.modes:
        embedder = Embedder(bilm, precision=mode)

        def bare(embedder: Embedder = embedder, mode: str = mode) -> None:
            outputs[mode] = embedder.embed(sentences)

        def warm(embedder: Embedder = embedder) -> None:
            embedder.cache.clear()
            embedder.warm_cache(warm_words)

        runs[mode] = (n_tokens, embedder.cache.clear, bare)  # from a cold character-CNN cache
        if warm_words:
            runs[f"warm_{mode}"] = (n_tokens, warm, bare)
        if args.pipe:
            runs[f"pipe_{mode}"] = _pipe(mode, options, weights, sentences)
    best = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, (_, setup, run) in runs.items():
            setup()
            best[name] = min(best[name], C.best_time(run, 1))
    seen = set(warm_words)
    result: Dict[str, object] = {"tokens": n_tokens, "sentences": len(sentences), "peak_rss_mb": C.peak_rss_mb(),
                                 "warm_hit_rate": sum(w in seen for s in sentences for w in s) / n_tokens}
    result.update({f"{name}_tokens_per_s": runs[name][0] / seconds for name, seconds in best.items()})
    if "exact" in outputs:
        numpy.savez(args.keep_path, *outputs["exact"][: args.keep])
    if "exact" in outputs and "fast" in outputs:
        exact, fast = numpy.concatenate(outputs["exact"], 1), numpy.concatenate(outputs["fast"], 1)
        diff = numpy.abs(exact - fast)
        result["fast_drift_max_abs"] = float(diff.max())
        result["fast_drift_mean_abs"] = float(diff.mean())
        result["fast_drift_max_rel"] = float(diff.max() / numpy.abs(exact).max())
        result["fast_drift_per_layer_max_abs"] = [float(d) for d in diff.max(axis=(1, 2))]
        cos = (exact * fast).sum(-1) / (numpy.linalg.norm(exact, axis=-1) * numpy.linalg.norm(fast, axis=-1))
        result["fast_min_cosine"] = float(cos.min())
    print(json.dumps(result))


def _pipe(mode: str, options: Path, weights: Path, sentences: List[List[str]]
          ) -> Tuple[int, Callable[[], None], Callable[[], None]]:
    """``nlp.pipe`` over the sentences as texts (tokenizer included), doc cache off."""
    import spacy

    from spacy_elmo import ElmoComponent
    from spacy_elmo.layers.bilm_model import get_embedder

    texts = [" ".join(words) for words in sentences]
    nlp = spacy.blank("en")
    elmo = cast(ElmoComponent, nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                                         "model": {"doc_cache_size": 0, "precision": mode}}))
    nlp("warm up")

    def run() -> None:
        for _ in nlp.pipe(texts):
            pass

    return sum(len(nlp.make_doc(t)) for t in texts), get_embedder(elmo.model).cache.clear, run


def _speeds(line: str, ours: Dict[str, float], modes: List[str], prefix: str) -> str:
    """``line`` followed by the tokens/s of each mode (result keys ``{prefix}{mode}_tokens_per_s``) and their ratio."""
    speed = {mode: ours[f"{prefix}{mode}_tokens_per_s"] for mode in modes}
    line += "".join(f" | {mode} {value:9,.0f} tok/s" for mode, value in speed.items())
    if "fast" in speed and "exact" in speed:
        line += f" | fast/exact {speed['fast'] / speed['exact']:.2f}x"
    return line


def compare(ours_path: Path, reference_path: Path) -> float:
    import numpy

    ours, ref = numpy.load(ours_path), numpy.load(reference_path)
    n = min(len(ours.files), len(ref.files))
    return max(float(numpy.abs(ours[f"arr_{i}"] - ref[f"arr_{i}"]).max()) for i in range(n) if ours[f"arr_{i}"].size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "original"], choices=sorted(C.SIZES))
    parser.add_argument("--modes", nargs="+", default=["exact", "fast"], choices=["exact", "fast"])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--warm-tokens", type=int, default=100_000,
                        help="the text after the measured one that warms the cache of the 'warm' runs (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pipe", dest="pipe", action="store_false")
    parser.add_argument("--reference", default=None, help="python of the allennlp venv, e.g. /tmp/refenv/bin/python")
    parser.add_argument("--ref-tokens", type=int, default=None, help="tokens for the reference (default: --tokens)")
    parser.add_argument("--ref-repeats", type=int, default=2)
    parser.add_argument("--keep", type=int, default=200, help="sentences compared with the reference")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sentences", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep-path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warm-text", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    C.WORK.mkdir(parents=True, exist_ok=True)
    sentences = C.corpus_sentences(args.tokens)
    corpus = C.WORK / f"sentences_{args.tokens}.json"
    corpus.write_text(json.dumps(sentences))
    warm_text = C.WORK / f"warm_{args.tokens}_{args.warm_tokens}.json"
    following = C.corpus_sentences(args.tokens + args.warm_tokens)[len(sentences):] if args.warm_tokens else []
    warm_text.write_text(json.dumps(following))
    ref_tokens = args.ref_tokens or args.tokens
    ref_corpus = C.WORK / f"sentences_{ref_tokens}.json"
    ref_corpus.write_text(json.dumps(C.corpus_sentences(ref_tokens)))
    print(f"corpus: {sum(map(len, sentences))} tokens, {len(sentences)} sentences; threads {args.threads}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; load average {C.load_average()}")
    for size in args.sizes:
        options, weights = C.weight_files(size)
        ours_path = C.WORK / f"ours_{size}.npz"
        begin = time.perf_counter()
        cmd = [sys.executable, __file__, "--worker", size, "--sentences", str(corpus), "--keep-path", str(ours_path),
               "--warm-text", str(warm_text), "--threads", str(args.threads), "--repeats", str(args.repeats), "--keep", str(args.keep),
               "--modes", *args.modes] + ([] if args.pipe else ["--no-pipe"])
        ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(_speeds(f"{size:9s} | peak RSS {ours['peak_rss_mb']:,.0f} MB", ours, args.modes, ""))
        if args.warm_tokens:
            print(_speeds(f"{'':9s} | warm cache ({args.warm_tokens:,} tokens of the text that follows; "
                          f"{ours['warm_hit_rate']:.0%} of tokens hit)", ours, args.modes, "warm_"))
        if args.pipe:
            for mode in args.modes:
                pipe = ours[f"pipe_{mode}_tokens_per_s"]
                print(f"{'':9s} | nlp.pipe {mode} {pipe:9,.0f} tok/s = {pipe / ours[f'{mode}_tokens_per_s']:.2f} of bare")
        if "fast_drift_max_abs" in ours:
            print(f"{'':9s} | fast drift from exact: max abs {ours['fast_drift_max_abs']:.3g} "
                  f"(per layer {', '.join(f'{d:.3g}' for d in ours['fast_drift_per_layer_max_abs'])}), "
                  f"mean abs {ours['fast_drift_mean_abs']:.3g}, max rel {ours['fast_drift_max_rel']:.3g}, "
                  f"min cosine {ours['fast_min_cosine']:.5f}")
        if args.reference:
            ref_path = C.WORK / f"reference_{size}.npz"
            cmd = [args.reference, str(Path(__file__).parent / "bench_reference.py"), str(options.parent),
                   str(ref_corpus), str(ref_path), "--threads", str(args.threads), "--repeats", str(args.ref_repeats),
                   "--keep", str(args.keep)]
            ref = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            ratios = ", ".join(f"{mode} {ours[f'{mode}_tokens_per_s'] / ref['tokens_per_s']:.1f}x" for mode in args.modes)
            print(f"{'':9s} | AllenNLP {ref['tokens_per_s']:9,.0f} tok/s on {ref['tokens']} tokens "
                  f"(peak RSS {ref['peak_rss_mb']:,.0f} MB) | ours/AllenNLP: {ratios} | "
                  f"max abs diff exact vs AllenNLP ({args.keep} sentences): {compare(ours_path, ref_path):.3g}")
        print(f"{'':9s} | ({time.perf_counter() - begin:.0f} s; load average {C.load_average()})", flush=True)


if __name__ == "__main__":
    main()
