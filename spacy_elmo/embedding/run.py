"""``embed``: a corpus to ELMo vectors on disk, shard by shard, on one process, under torchrun or on Ray.

Every engine runs the same :class:`Worker` over the same shards, so the files do not depend on how many
processes wrote them. Under torchrun rank r of N takes every N-th shard; rank 0 writes the manifest and,
once every shard's progress record is there, completes it.
"""
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from tqdm import tqdm

import torch.distributed as dist

from ..about import __version__
from ..io.families import model_options
from ..pretraining import distributed
from ..pretraining.corpus import Item, check_paths
from ..files import leftovers
from .hdf5_index import write_hdf5_indexes
from .segment import Segmenter
from .manifest import MANIFEST, read_manifest, resume_problem, weights_digest, write_manifest
from .settings import EmbedSettings
from .shards import Shard, plan_shards
from .worker import PROGRESS_DIR, SHARDS_DIR, EmbedStats, Worker, progress_path, read_record
from .writers import Layout

PathLike = Union[str, Path]
POLL_SECONDS = 0.5


def build_manifest(files: Sequence[Path], shards: Sequence[Shard], weights: Path, options: Optional[PathLike],
                   settings: EmbedSettings) -> Dict[str, Any]:
    if weights.is_file() and weights.suffix.lower() != ".zip" and options is None:
        raise ValueError(f"{weights}: a published hdf5 weight file needs its options.json (--options)")
    opts = model_options(weights, options)  # any family, without reading its weights
    layout = Layout(settings.layers, opts.n_output_layers, opts.output_dim, settings.storage_dtype)
    return {"spacy_elmo": __version__, "format": settings.format, "layout": layout.to_dict(),
            "settings": settings.output_dict(), "options": opts.to_dict(), "weights": str(weights),
            "weights_sha256": weights_digest(weights), "inputs": [str(f) for f in files],
            "shards": [s.to_dict() for s in shards], "complete": False}


def prepare_output(output: Path, manifest: Dict[str, Any], resume: bool) -> Optional[str]:
    """Check the output directory against the run and start it there; the problem, if any."""
    old = read_manifest(output)
    if old is not None and not resume:
        return f"{output} already holds an embedding run ({MANIFEST}): add --resume to continue it, or choose another --output"
    if old is None and (output / SHARDS_DIR).exists():
        return f"{output / SHARDS_DIR} exists without a {MANIFEST}: choose another --output"
    if old is not None:
        problem = resume_problem(old, manifest)
        if problem:
            return f"Cannot resume in {output}: {problem}"
    for directory in (output / SHARDS_DIR, output / PROGRESS_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in leftovers(directory):
            stale.unlink()
    if old is None:
        write_manifest(output, manifest, [None] * len(manifest["shards"]))
    return None


def expected_size(shards: Sequence[Shard], layout: Layout, done: int) -> str:
    words = sum(s.words for s in shards)
    total = words * layout.bytes_per_token
    layers = f"all {layout.n_layers} layers" if layout.layers == "all" else f"the {layout.layers} layer"
    return (f"Expected size: about {_human(total)} (about {words:,} tokens x {layout.bytes_per_token:,} bytes: {layers} "
            f"of {layout.width} {layout.dtype.name}); {len(shards)} shard(s), {done} already done")


def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1000
    raise AssertionError


def wait_records(output: Path, shards: Sequence[Shard]) -> List[dict]:
    """Every shard's progress record, once all are written."""
    found: List[Optional[dict]] = [read_record(progress_path(output, s)) for s in shards]
    while not all(found):
        time.sleep(POLL_SECONDS)
        found = [r or read_record(progress_path(output, s)) for r, s in zip(found, shards)]
    return [r for r in found if r is not None]  # all of them, now


def finish(output: Path, manifest: Dict[str, Any], shards: Sequence[Shard], settings: EmbedSettings) -> Dict[str, Any]:
    """Wait for every shard's progress record, then complete the manifest (and the HDF5 index files)."""
    records = wait_records(output, shards)
    if settings.format == "hdf5":
        manifest = dict(manifest, hdf5_files=write_hdf5_indexes(output, shards, records))
    final = write_manifest(output, manifest, records)
    stats = EmbedStats()
    for record in records:
        stats.add(record["stats"])
    return {"manifest": final, "stats": stats}


def _broadcast(obj: Any, ctx: distributed.Context) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def progress_bar(total: int, enabled: bool) -> tqdm:
    return tqdm(total=total, unit="tokens", unit_scale=True, disable=not enabled, dynamic_ncols=True, mininterval=1.0)


def start_run(inputs: Sequence[PathLike], output: Path, weights: Path, options: Optional[PathLike],
              settings: EmbedSettings, resume: bool, main: bool) -> Tuple[List[Shard], Optional[Dict[str, Any]], Optional[str]]:
    """Plan the shards; on the main process also check and start the output. ``(shards, manifest, problem)``."""
    if not main:
        return plan_shards(check_paths(inputs), settings.shard_lines, token_counter(settings)), None, None
    return start_main_run(inputs, output, weights, options, settings, resume)


def token_counter(settings: EmbedSettings) -> Callable[[Sequence[Item]], int]:
    """What the shard plan counts: the tokens the workers' tokenizer will give."""
    return Segmenter(settings.lang, settings.model, settings.tokenized, settings.window).count_tokens


def start_main_run(inputs: Sequence[PathLike], output: Path, weights: Path, options: Optional[PathLike],
                   settings: EmbedSettings, resume: bool) -> Tuple[List[Shard], Dict[str, Any], Optional[str]]:
    """:func:`start_run` on the main process: the shards, the manifest, and the problem with the output if any."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file, not a directory: give a directory for manifest.json and shards/")
    files = check_paths(inputs)
    shards = plan_shards(files, settings.shard_lines, token_counter(settings))
    manifest = build_manifest(files, shards, weights, options, settings)
    return shards, manifest, prepare_output(output, manifest, resume)


def finished_shards(output: Path, shards: Sequence[Shard]) -> Set[int]:
    return {s.index for s in shards if read_record(progress_path(output, s))}


def embed_corpus(
    inputs: Sequence[PathLike], output: PathLike, weights: PathLike, options: Optional[PathLike] = None,
    settings: EmbedSettings = EmbedSettings(), resume: bool = False, device: str = "auto",
    say: Callable[[str], None] = tqdm.write,
) -> Dict[str, Any]:
    """Embed ``inputs`` into ``output`` in this process, or as one rank of a torchrun job. Rank 0 returns
    ``{"manifest": ..., "stats": EmbedStats}``; other ranks return ``{}``."""
    output, weights = Path(output), Path(weights)
    ctx = distributed.setup(device)
    try:
        shards, manifest, problem = start_run(inputs, output, weights, options, settings, resume, ctx.is_main)
        problem = _broadcast(problem, ctx)
        if problem:
            raise ValueError(problem)
        manifest = _broadcast(manifest, ctx)
        done = finished_shards(output, shards)
        mine = [s for s in shards if s.index % ctx.world == ctx.rank and s.index not in done]
        worker = Worker(settings, weights, options, ctx.device)
        if ctx.is_main:
            say(expected_size(shards, worker.layout, len(done)))
            if ctx.distributed:
                say(f"{ctx.world} processes: rank r takes shards r, r + {ctx.world}, r + {2 * ctx.world}...; the bar shows rank 0's")
        bar = progress_bar(sum(s.words for s in mine), ctx.is_main)
        for shard in mine:
            worker.embed_shard(shard, output, bar.update)
        bar.close()
        return finish(output, manifest, shards, settings) if ctx.is_main else {}
    finally:
        distributed.teardown(ctx, finished=False)
