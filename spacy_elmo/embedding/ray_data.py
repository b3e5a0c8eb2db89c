"""ELMo on Ray Data: a class-based ``map_batches`` callable (one biLM per actor) for any Dataset of texts or
token lists, and the ``--engine ray`` run, whose actors each embed whole shards with the CLI's own worker.

Ray is an optional extra (``pip install 'spacy-elmo[ray]'``); nothing here imports it until it is used.
"""
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import numpy

from .run import PathLike, expected_size, finish, finished_shards, progress_bar, start_main_run
from .columns import add_elmo_columns
from .settings import EmbedSettings
from .shards import Shard
from .worker import Worker
from .writers import Layout


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ValueError("--engine ray needs Ray Data, which is not installed: pip install 'spacy-elmo[ray]'") from err
    return ray


def _device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


class ElmoVectors:
    """``ds.map_batches(ElmoVectors, fn_constructor_kwargs={...}, batch_format="pyarrow", concurrency=...)``:
    adds ``tokens`` and the ELMo layer columns (as the CLI's Parquet shards hold them) to batches with a
    ``text`` column (raw text, tokenised as the CLI does) or a ``tokens`` column (lists of words). Other
    columns pass through. A row's vectors equal :meth:`Embedder.embed` on its pieces, as in the CLI."""

    def __init__(self, weights: PathLike, options: Optional[PathLike] = None, text_column: str = "text",
                 tokens_column: str = "tokens", device: str = "auto", threads: int = 1, **settings: Any) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.worker = Worker(EmbedSettings(**settings), weights, options, _device(device))
        self.text_column, self.tokens_column = text_column, tokens_column

    def __call__(self, batch):
        return add_elmo_columns(self.worker, batch, self.text_column, self.tokens_column)


def embed_dataset(ds, weights: PathLike, options: Optional[PathLike] = None, *, concurrency: int = 1,
                  num_cpus: float = 1, num_gpus: float = 0, batch_size: int = 256, **kwargs: Any):
    """``ds`` with ELMo columns: ``map_batches`` over :class:`ElmoVectors`, ``concurrency`` actors of
    ``num_cpus`` / ``num_gpus`` each. ``kwargs``: ``text_column``, ``tokens_column``, ``device`` and the
    :class:`EmbedSettings` fields (``layers``, ``dtype``, ``lang``, ``window``, ``precision``...)."""
    constructor = dict(weights=str(Path(weights).resolve()), threads=max(1, int(num_cpus)), **kwargs)
    if options is not None:
        constructor["options"] = str(Path(options).resolve())
    return ds.map_batches(ElmoVectors, fn_constructor_kwargs=constructor, batch_format="pyarrow",
                          batch_size=batch_size, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus)


class ShardActor:
    """A Ray actor of ``--engine ray``: embeds whole shards into the output, as a torchrun rank would."""

    def __init__(self, settings: Dict[str, Any], weights: str, options: Optional[str], output: str, cwd: str,
                 threads: int, device: str) -> None:
        import torch

        os.chdir(cwd)  # the shards name their input files as the driver was given them
        torch.set_num_threads(max(1, threads))
        self.worker = Worker(EmbedSettings(**settings), weights, options, _device(device))
        self.output = Path(output)

    def __call__(self, batch: Dict[str, numpy.ndarray]) -> Dict[str, numpy.ndarray]:
        fields = list(batch)
        records = [self.worker.embed_shard(Shard.from_dict({f: _plain(batch[f][i]) for f in fields}), self.output)
                   for i in range(len(batch[fields[0]]))]
        return {"shard": numpy.array([r["shard"] for r in records]), "tokens": numpy.array([r["tokens"] for r in records])}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, numpy.generic) else value


def embed_corpus_on_ray(
    inputs: Sequence[PathLike], output: PathLike, weights: PathLike, options: Optional[PathLike] = None,
    settings: EmbedSettings = EmbedSettings(), resume: bool = False, address: Optional[str] = None,
    workers: int = 0, cpus_per_worker: float = 1, gpus_per_worker: float = 0, device: str = "auto",
    say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """:func:`embed_corpus` with the shards spread over the actors of a Ray cluster (``address``: "auto" for a
    running one; None: a local Ray). The output directory must be on a file system every node sees."""
    ray = require_ray()
    output, weights = Path(output).resolve(), Path(weights).resolve()
    shards, manifest, problem = start_main_run(inputs, output, weights, options, settings, resume)
    if problem:
        raise ValueError(problem)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts tokens
    if not workers:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 1e-9)))
    done = finished_shards(output, shards)
    pending = [s for s in shards if s.index not in done]
    stored = manifest["layout"]
    layout = Layout(stored["layers"], stored["n_layers"], stored["width"], stored["dtype"])
    say(expected_size(shards, layout, len(done)))
    say(f"Ray: {min(workers, len(pending) or 1)} actor(s) of {cpus_per_worker} CPU, {gpus_per_worker} GPU")
    if pending:
        actor_args = dict(settings=settings.to_dict(), weights=str(weights),
                          options=str(Path(options).resolve()) if options is not None else None,
                          output=str(output), cwd=os.getcwd(), threads=int(max(1, cpus_per_worker)), device=device)
        ds = ray.data.from_items([s.to_dict() for s in pending], override_num_blocks=len(pending))
        results = ds.map_batches(ShardActor, fn_constructor_kwargs=actor_args, batch_size=1, batch_format="numpy",
                                 concurrency=min(workers, len(pending)), num_cpus=cpus_per_worker,
                                 num_gpus=gpus_per_worker)
        bar = progress_bar(sum(s.words for s in pending), True)
        for row in results.iter_rows():
            bar.update(int(row["tokens"]))
        bar.close()
    return finish(output, manifest, shards, settings)
