"""Spark against ``embed``: rows/s and tokens/s of the Spark paths and of the local run on the same lines.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_spark.py --size small --tokens 20000 --repeats 2

The first ``--tokens`` spaCy tokens of the WNUT-17 raw text, whole lines (one row per line), random
weights of ``--size``, float32 Parquet out. In turns, best of ``--repeats``:

- ``embed``: :func:`embed_corpus` in this process with ``--threads`` torch threads (end to end: weights
  loaded, text read and tokenised, files written);
- ``--engine spark``: :func:`embed_corpus_on_spark` on a ``local[--threads]`` session, the text in
  ``2 x --threads`` shards, a task per shard, one torch thread per task;
- ``embed_dataframe``: a DataFrame of the lines (``--threads`` partitions) through :func:`embed_dataframe`
  and ``.write.parquet``, one torch thread per Python worker.

Spark's session is started once, before the turns, and its start is reported on its own. The first turn
of each Spark path includes loading the biLM in each Python worker; later turns find it loaded (Spark keeps
its Python workers), so "best" is the warm figure and "first" the cold one.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
from bench_embed import corpus_lines, write_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=sorted(C.SIZES))
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of embed; Spark's local[N] task slots")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from spacy_elmo.embedding import EmbedSettings, embed_corpus, embed_dataframe
    from spacy_elmo.embedding.spark import embed_corpus_on_spark

    options, weights = C.weight_files(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    lines = corpus_lines(args.tokens)
    text = write_text(work, lines)
    shard_lines = -(-len(lines) // (2 * args.threads))

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    start = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{args.threads}]").appName("bench_spark")
             .config("spark.driver.memory", "2g").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", str(args.threads)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(4).collect()
    session_start = time.perf_counter() - start
    frame = spark.createDataFrame([(i, line) for i, line in enumerate(lines)], "id long, text string")
    frame = frame.repartition(args.threads).cache()
    frame.count()

    runs = ["embed", "engine spark", "embed_dataframe"]
    times: Dict[str, List[float]] = {name: [] for name in runs}
    rows = tokens = 0
    for repeat in range(args.repeats):
        for name in runs:
            output = work / f"{name.replace(' ', '_')}{repeat}"
            begin = time.perf_counter()
            if name == "embed":
                torch.set_num_threads(args.threads)
                result = embed_corpus([text], output, weights, options, EmbedSettings(shard_lines=shard_lines),
                                      device="cpu", say=lambda _: None)
                rows, tokens = result["manifest"]["rows"], result["manifest"]["tokens"]
            elif name == "engine spark":
                embed_corpus_on_spark([text], output, weights, options, EmbedSettings(shard_lines=shard_lines),
                                      device="cpu", threads=1, say=lambda _: None)
            else:
                embed_dataframe(frame, weights, options, device="cpu", threads=1).write.parquet(str(output))
            times[name].append(time.perf_counter() - begin)
            shutil.rmtree(output)
    spark.stop()
    out: Dict[str, object] = {"size": args.size, "rows": rows, "tokens": tokens, "threads": args.threads,
                              "spark_session_start_s": round(session_start, 1), "load": C.load_average()}
    for name in runs:
        best = min(times[name])
        out[name] = {"rows_per_s": round(rows / best, 1), "tokens_per_s": round(tokens / best),
                     "best_s": round(best, 2), "first_s": round(times[name][0], 2)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
