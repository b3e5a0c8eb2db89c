"""ELMo on Spark: :func:`embed_dataframe` adds the ELMo columns to a DataFrame of texts or token lists, and
``--engine spark`` (:func:`embed_corpus_on_spark`) embeds the CLI's shards as Spark tasks.

Both run in Spark's Python workers, which Spark keeps for task after task (``spark.python.worker.reuse``, on
by default): each loads a biLM once, on its first task, and keeps it for every later batch and task.
:func:`embed_dataframe` goes through ``mapInArrow``: Arrow batches in and out, the per-batch step of the Ray
Data path (:func:`add_elmo_columns`), no pandas in between.

PySpark is an optional extra (``pip install 'spacy-elmo[spark]'``); nothing here imports it until it is used.
"""
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

from ..bilm.options import BiLMOptions
from ..files import existing
from ..io.native import OPTIONS_FILE
from .columns import add_elmo_columns
from .run import PathLike, expected_size, finish, finished_shards, start_main_run
from .settings import EmbedSettings
from .shards import Shard
from .worker import Worker
from .writers import Layout, layer_columns

_WORKERS: Dict[Tuple, Worker] = {}  # this process's biLMs, by what they were loaded from and on which device
LOADS = 0  # how many biLMs this process has loaded (one per weights, settings and device, however many batches)


def require_spark():
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError as err:
        raise ValueError("The Spark path needs PySpark, which is not installed: pip install 'spacy-elmo[spark]'") from err
    return pyspark


def bilm_options(weights: Path, options: Optional[PathLike]) -> BiLMOptions:
    """The options of the biLM in ``weights`` (a native directory, or an hdf5 file with ``options``)."""
    weights = existing(weights, "ELMo weights")
    if weights.is_dir():
        return BiLMOptions.from_file(weights / OPTIONS_FILE)
    if options is None:
        raise ValueError(f"{weights}: a published hdf5 weight file needs its options.json (options=...)")
    return BiLMOptions.from_file(options)


def task_device(device: str) -> str:
    """``auto``: the GPU Spark gave this task (``spark.task.resource.gpu.amount``), else CUDA if this
    executor has it, else the CPU. Any other name is used as it is."""
    if device != "auto":
        return device
    from pyspark import TaskContext

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    if gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _local_path(path: str, shipped: bool) -> str:
    """A path the driver gave: as it is (a file system every node sees), or this node's copy (``ship``)."""
    if not shipped:
        return path
    from pyspark import SparkFiles

    return SparkFiles.get(path)


def worker_for(spec: Dict[str, Any]) -> Worker:
    """This process's :class:`Worker` for ``spec``, loaded on first use and kept."""
    global LOADS
    device = task_device(spec["device"])
    key = (spec["weights"], spec["options"], spec["shipped"], tuple(sorted(spec["settings"].items())), device)
    worker = _WORKERS.get(key)
    if worker is None:
        import torch

        torch.set_num_threads(max(1, spec["threads"]))
        options = _local_path(spec["options"], spec["shipped"]) if spec["options"] is not None else None
        worker = Worker(EmbedSettings(**spec["settings"]), _local_path(spec["weights"], spec["shipped"]), options,
                        device)
        _WORKERS[key] = worker
        LOADS += 1
    return worker


def spark_vectors(table, columns: Sequence[str]):
    """The layer columns as Spark's ``array<array<float>>`` (Arrow ``list<list<float>>``): Spark has no
    fixed-size lists."""
    import pyarrow as pa

    target = pa.list_(pa.list_(pa.float32()))
    for name in columns:
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(target))
    return table


def embed_batches(batches: Iterable[Any], spec: Dict[str, Any]) -> Iterator[Any]:
    """``mapInArrow``'s function: each Arrow batch, ``batch_size`` rows at a time, with the ELMo columns."""
    import pyarrow as pa

    worker = worker_for(spec)
    size = spec["batch_size"]
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            table = pa.Table.from_batches([batch.slice(start, size)])
            table = add_elmo_columns(worker, table, spec["text_column"], spec["tokens_column"])
            yield from spark_vectors(table, worker.layout.columns).to_batches()


def output_schema(schema, tokens_column: str, columns: Sequence[str]):
    """The input's columns (less any old ``tokens`` and layer columns), ``tokens`` and the layer columns."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    kept = [f for f in schema.fields if f.name not in (tokens_column, *columns)]
    added = [StructField(tokens_column, ArrayType(StringType()))]
    added += [StructField(name, ArrayType(ArrayType(FloatType()))) for name in columns]
    return StructType(kept + added)


def _spec(spark, weights: PathLike, options: Optional[PathLike], settings: EmbedSettings, device: str,
          threads: int, ship: bool) -> Dict[str, Any]:
    """What a Python worker needs to load the biLM (whose files the caller has checked)."""
    weights = Path(weights).resolve()
    paths = [weights] + ([Path(options).resolve()] if options is not None else [])
    if ship:  # Spark copies them to every node; a worker finds its copy by name (SparkFiles.get)
        for path in paths:
            spark.sparkContext.addFile(str(path), recursive=path.is_dir())
    names = [p.name if ship else str(p) for p in paths]
    if threads < 0:
        raise ValueError(f"threads must be 0 (spark.task.cpus) or positive, got {threads}")
    threads = threads or int(spark.conf.get("spark.task.cpus", "1"))
    return {"weights": names[0], "options": names[1] if options is not None else None, "shipped": ship,
            "settings": settings.to_dict(), "device": device, "threads": threads}


def embed_dataframe(df, weights: PathLike, options: Optional[PathLike] = None, *, text_column: str = "text",
                    tokens_column: str = "tokens", batch_size: int = 256, device: str = "auto", threads: int = 0,
                    ship: bool = False, **settings: Any):
    """``df`` with ``tokens`` (``array<string>``) and the ELMo layer columns of the CLI's Parquet shards
    (``array<array<float>>``: a list of token vectors per row), from its ``text`` column (raw text, tokenised
    as the CLI does) or its ``tokens`` column (lists of words); other columns pass through. A row's vectors
    equal :meth:`Embedder.embed` on its pieces, as in the CLI. Lazy, as any DataFrame: ``.write.parquet(...)``.

    ``weights`` / ``options``: paths every executor sees, or (``ship=True``) files on the driver that Spark
    copies to each node. ``batch_size``: rows per biLM call. ``device``: "auto" takes the GPU that Spark gave
    the task (``spark.task.resource.gpu.amount``). ``threads``: torch threads per Python worker (0: the
    ``spark.task.cpus``). ``settings``: the :class:`EmbedSettings` fields (``layers``, ``lang``, ``model``,
    ``window``, ``precision``...); ``dtype`` is float32, the only float type Spark has.
    """
    require_spark()
    config = EmbedSettings(**settings)
    if config.dtype != "float32":
        raise ValueError(f"dtype {config.dtype!r}: Spark has no float16 type; the Spark path gives float32 vectors")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if tokens_column not in df.columns and text_column not in df.columns:
        raise ValueError(f"embed_dataframe needs a {text_column!r} or {tokens_column!r} column; the DataFrame has {df.columns}")
    opts = bilm_options(Path(weights), options)  # the files checked here, on the driver, once
    spec = _spec(df.sparkSession, weights, options, config, device, threads, ship)
    spec.update(batch_size=batch_size, text_column=text_column, tokens_column=tokens_column)
    columns = layer_columns(config.layers, opts.n_output_layers)
    return df.mapInArrow(partial(embed_batches, spec=spec), output_schema(df.schema, tokens_column, columns))


def embed_shard_task(shard: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
    """A Spark task of ``--engine spark``: one shard into the output, as a torchrun rank or a Ray actor would."""
    worker = worker_for(spec)
    os.chdir(spec["cwd"])  # the shards name their input files as the driver was given them
    return worker.embed_shard(Shard.from_dict(shard), Path(spec["output"]))


def spark_session(master: Optional[str] = None):
    """The active SparkSession, or a new one (on ``master``; without it, spark-submit's or
    ``PYSPARK_SUBMIT_ARGS``'s, else ``local[*]``). Second: whether it was created here."""
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    builder = SparkSession.builder.appName("spacy-elmo embed")
    if master:
        builder = builder.master(master)
    local = master.startswith("local") if master else "PYSPARK_SUBMIT_ARGS" not in os.environ
    if local:  # the workers run this Python, which has spacy-elmo (Spark's default: the python3 on the PATH)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate(), True


def embed_corpus_on_spark(
    inputs: Sequence[PathLike], output: PathLike, weights: PathLike, options: Optional[PathLike] = None,
    settings: EmbedSettings = EmbedSettings(), resume: bool = False, master: Optional[str] = None,
    device: str = "auto", threads: int = 0, say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """:func:`embed_corpus` with each shard a Spark task (the active session, or one on ``master``). The
    output directory and the inputs must be on a file system every executor sees."""
    spark, created = spark_session(master)
    try:
        output = Path(output).resolve()
        shards, manifest, problem = start_main_run(inputs, output, Path(weights).resolve(), options, settings, resume)
        if problem:
            raise ValueError(problem)
        done = finished_shards(output, shards)
        pending = [s for s in shards if s.index not in done]
        stored = manifest["layout"]
        say(expected_size(shards, Layout(stored["layers"], stored["n_layers"], stored["width"], stored["dtype"]),
                          len(done)))
        if pending:
            spec = _spec(spark, weights, options, settings, device, threads, ship=False)
            spec.update(output=str(output), cwd=os.getcwd())
            say(f"Spark ({spark.sparkContext.master}): {len(pending)} shard(s), one task each")
            tasks = spark.sparkContext.parallelize([s.to_dict() for s in pending], len(pending))
            tasks.map(partial(embed_shard_task, spec=spec)).collect()
        return finish(output, manifest, shards, settings)
    finally:
        if created:
            spark.stop()
