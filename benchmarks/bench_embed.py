"""Speed and memory of ``embed``: tokens/s against the bare biLM, 2 processes against 1, peak RSS by corpus size.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_embed.py --size small --threads 2 --repeats 3
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_embed.py --only processes
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_embed.py --only memory --memory-tokens 100000 1000000

speed: the first ``--tokens`` spaCy tokens of the WNUT-17 raw text, whole lines (one row per line), with
random weights of ``--size``. In turns, best of ``--repeats``: the bare :meth:`Embedder.embed` on the
pieces the command reads (tokenised ahead, untimed), then :func:`embed_corpus` to Parquet (float16) and to
HDF5 (float32), timed end to end in this process (weights loaded, text read and tokenised, files written;
the interpreter's start is not counted) and for its shard loop alone. Every run starts from a cold
character-CNN cache.

processes: the same text in 8 shards, once by 1 process of ``--threads`` threads and once by 2 gloo
processes of ``--threads / 2`` under torchrun; each time is rank 0's :func:`embed_corpus` call, which
ends when every shard is written.

memory: for each size, a fresh process embeds the text repeated to about that many tokens with
``tiny`` weights and reports its peak RSS (flat: memory does not grow with the corpus); "bare" runs
the same chunks through :meth:`Embedder.embed` alone, for the biLM's own share.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def corpus_lines(n_tokens: int) -> List[str]:
    """Whole lines of the WNUT-17 raw text up to ``n_tokens`` spaCy tokens."""
    import spacy

    tokenizer = spacy.blank("en").tokenizer
    lines, total = [], 0
    with C.CORPUS.open(encoding="utf8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            lines.append(line)
            total += sum(not t.is_space for t in tokenizer(line))
            if total >= n_tokens:
                break
    return lines


def write_text(directory: Path, lines: List[str], repeat: int = 1) -> Path:
    path = directory / "corpus.txt"
    with path.open("w", encoding="utf8") as handle:
        for _ in range(repeat):
            handle.write("\n".join(lines) + "\n")
    return path


def speed(args: argparse.Namespace) -> Dict[str, float]:
    import torch

    from spacy_elmo.bilm import Embedder
    from spacy_elmo.embedding import EmbedSettings, embed_corpus
    from spacy_elmo.embedding.segment import Segmenter
    from spacy_elmo.embedding import worker as worker_module
    from spacy_elmo.io import load_bilm

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    lines = corpus_lines(args.tokens)
    text = write_text(work, lines)
    pieces = [p for seg in Segmenter()(lines) for p in seg.pieces]
    n_tokens = sum(map(len, pieces))
    bilm = load_bilm(weights, options).eval()
    loop_time: Dict[str, float] = {}
    real_embed_shard = worker_module.Worker.embed_shard

    def timed_embed_shard(self, *a, **k):
        start = time.perf_counter()
        try:
            return real_embed_shard(self, *a, **k)
        finally:
            loop_time["last"] = loop_time.get("last", 0.0) + time.perf_counter() - start

    # deliberate monkeypatch: times the shard loop inside embed_corpus, in this process
    worker_module.Worker.embed_shard = timed_embed_shard  # type: ignore[method-assign]
    best = {k: float("inf") for k in ("bare", "parquet", "parquet_loop", "hdf5", "hdf5_loop")}
    embedder = Embedder(bilm, 4096, 50_000, "exact")
    embedder.embed([["warm", "up"]])
    for repeat in range(args.repeats):
        embedder.cache.clear()
        start = time.perf_counter()
        embedder.embed(pieces)
        best["bare"] = min(best["bare"], time.perf_counter() - start)
        for fmt in ("parquet", "hdf5"):
            loop_time["last"] = 0.0
            start = time.perf_counter()
            embed_corpus([text], work / f"{fmt}{repeat}", weights, options, EmbedSettings(format=fmt), device="cpu",
                         say=lambda _: None)
            best[fmt] = min(best[fmt], time.perf_counter() - start)
            best[f"{fmt}_loop"] = min(best[f"{fmt}_loop"], loop_time["last"])
    out = {"size": args.size, "threads": args.threads, "lines": len(lines), "tokens": n_tokens,
           "load": C.load_average()}
    for name, seconds in best.items():
        out[f"{name}_tokens_per_s"] = round(n_tokens / seconds)
    for name in ("parquet", "parquet_loop", "hdf5", "hdf5_loop"):
        out[f"{name}_vs_bare"] = round(best["bare"] / best[name], 3)
    return out


def rank_worker(args: argparse.Namespace) -> None:
    """One torchrun rank (or the single process): rank 0 prints its embed_corpus time."""
    import torch

    from spacy_elmo.embedding import EmbedSettings, embed_corpus

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files(args.size)
    start = time.perf_counter()
    result = embed_corpus([args.rank_worker], args.output, weights, options,
                          EmbedSettings(shard_lines=args.shard_lines), device="cpu", say=lambda _: None)
    if result:
        print(json.dumps({"seconds": time.perf_counter() - start, "tokens": result["manifest"]["tokens"]}))


def processes(args: argparse.Namespace) -> Dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench_embed_proc_"))
    lines = corpus_lines(args.tokens)
    text = write_text(work, lines)
    shard_lines = -(-len(lines) // 8)
    env = {**os.environ, "PYTHONPATH": str(C.ROOT)}
    script = str(Path(__file__).resolve())
    common = ["--rank-worker", str(text), "--size", args.size, "--shard-lines", str(shard_lines)]
    runs = {"1 process": ([sys.executable, script], args.threads),
            "2 processes": ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             script], max(1, args.threads // 2))}
    best: Dict[str, float] = {}
    tokens = 0
    for repeat in range(args.repeats):
        for name, (command, threads) in runs.items():
            output = work / f"{name.replace(' ', '_')}{repeat}"
            done = subprocess.run([*command, *common, "--threads", str(threads), "--output", str(output)],
                                  env=env, capture_output=True, text=True, check=True)
            record = json.loads(done.stdout.strip().splitlines()[-1])
            tokens = record["tokens"]
            best[name] = min(best.get(name, float("inf")), record["seconds"])
    out: Dict[str, object] = {"size": args.size, "tokens": tokens, "shards": 8, "load": C.load_average()}
    for name, seconds in best.items():
        out[f"{name} tokens/s"] = round(tokens / seconds)
    out["speedup"] = round(best["1 process"] / best["2 processes"], 3)
    return out


def memory_worker(args: argparse.Namespace) -> None:
    """``--format parquet|hdf5``: :func:`embed_corpus`; ``bare``: the same chunks of pieces through the bare
    :meth:`Embedder.embed`, the vectors dropped (the biLM's own share of the growth)."""
    import itertools

    import torch

    from spacy_elmo.embedding import EmbedSettings, Worker, embed_corpus

    torch.set_num_threads(args.threads)
    options, weights = C.weight_files("tiny")
    lines = corpus_lines(20_000)
    work = Path(tempfile.mkdtemp(prefix="bench_embed_mem_"))
    repeat = max(1, round(args.memory_worker / 20_000))
    text = write_text(work, lines, repeat=repeat)
    baseline = C.peak_rss_mb()
    start = time.perf_counter()
    if args.format == "bare":
        worker = Worker(EmbedSettings(), weights, options, "cpu")
        n_tokens = 0
        chunk = []
        for line in itertools.chain(itertools.chain.from_iterable(itertools.repeat(lines, repeat)), [None]):
            if line is not None:
                chunk.append(line)
            if len(chunk) == 1000 or (line is None and chunk):
                pieces = [p for seg in worker.segmenter(chunk) for p in seg.pieces]
                n_tokens += sum(map(len, pieces))
                worker.embedder.embed(pieces)
                chunk = []
    else:
        result = embed_corpus([text], work / "out", weights, options, EmbedSettings(format=args.format),
                              device="cpu", say=lambda _: None)
        n_tokens = result["manifest"]["tokens"]
    print(json.dumps({"tokens": n_tokens, "format": args.format, "baseline_mb": round(baseline),
                      "peak_mb": round(C.peak_rss_mb()), "seconds": round(time.perf_counter() - start, 1)}))


def memory(args: argparse.Namespace) -> List[dict]:
    out = []
    for n_tokens in args.memory_tokens:
        for fmt in args.memory_formats:
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-worker", str(n_tokens),
                                   "--format", fmt, "--threads", str(args.threads)],
                                  env={**os.environ, "PYTHONPATH": str(C.ROOT)}, capture_output=True, text=True,
                                  check=True)
            out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=sorted(C.SIZES))
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["speed", "processes", "memory"],
                        choices=["speed", "processes", "memory"])
    parser.add_argument("--memory-tokens", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--memory-formats", nargs="+", default=["parquet", "hdf5", "bare"],
                        choices=["parquet", "hdf5", "bare"])
    parser.add_argument("--rank-worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--shard-lines", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--format", default="parquet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_worker:
        return rank_worker(args)
    if args.memory_worker:
        return memory_worker(args)
    if "speed" in args.only:
        print(json.dumps({"speed": speed(args)}), flush=True)
    if "processes" in args.only:
        print(json.dumps({"processes": processes(args)}), flush=True)
    if "memory" in args.only:
        for record in memory(args):
            print(json.dumps({"memory": record}), flush=True)


if __name__ == "__main__":
    main()
