"""One process's biLM, tokenizer and writer: items to rows, chunk by chunk, and whole shards to files."""
import dataclasses
import json
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

import numpy
import torch

from ..bilm.embedder import Embedder
from ..bilm.model import BiLM
from ..io import load_bilm
from ..pretraining.corpus import CorpusStats, Item
from ..files import write_json
from .segment import Segmenter
from .settings import EmbedSettings
from .shards import Shard, shard_items
from .vectors import row_layers
from .writers import SUFFIXES, WRITERS, Layout, Row

TOKENIZE_BATCH = 256
SHARDS_DIR = "shards"
PROGRESS_DIR = ".progress"
Numbered = Tuple[str, int, Item]  # (file, line, item)


def shard_path(output: Path, shard: Shard, fmt: str) -> Path:
    return output / SHARDS_DIR / f"{shard.name}{SUFFIXES[fmt]}"


def progress_path(output: Path, shard: Shard) -> Path:
    """Written after the shard's file: its presence means the shard is finished."""
    return output / PROGRESS_DIR / f"{shard.name}.json"


def row_text(item: Item) -> str:
    """The text a row is keyed by in ``sentence_to_index``: the stripped line, or its words joined by spaces."""
    return item.strip() if isinstance(item, str) else " ".join(item)


class Worker:
    """Embeds rows with one biLM. ``bilm`` (already loaded) or ``weights`` (+ ``options`` for hdf5)."""

    def __init__(self, settings: EmbedSettings, weights: Union[str, Path, None] = None,
                 options: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
                 bilm: Optional[BiLM] = None) -> None:
        self.settings = settings
        if bilm is None:
            if weights is None:
                raise TypeError("Worker needs a loaded bilm or the weights to load it from")
            bilm = load_bilm(weights, options)
        self.embedder = Embedder(bilm.to(device), settings.max_batch_tokens, settings.cache_size, settings.precision)
        self.segmenter = Segmenter(settings.lang, settings.model, settings.tokenized, settings.window)
        opts = bilm.options
        self.layout = Layout(settings.layers, opts.n_output_layers, opts.output_dim, settings.storage_dtype)

    def chunks(self, numbered: Iterable[Numbered], stats: "EmbedStats") -> Iterator[Tuple[List[Row], List[numpy.ndarray]]]:
        """``(rows, stored vectors)`` for chunks of at least ``chunk_tokens`` tokens (the last one smaller),
        in input order. A chunk is a pure function of the items, so every process cuts the same chunks."""
        numbered = iter(numbered)
        rows: List[Row] = []
        segments = []
        n_tokens = 0
        while True:
            group = list(islice(numbered, TOKENIZE_BATCH))
            if not group:
                break
            for (file, line, item), seg in zip(group, self.segmenter([g[2] for g in group])):
                if not seg.tokens:  # text the tokenizer reads as whitespace only
                    stats.lines -= 1
                    stats.skip(Path(file), "blank")
                    continue
                stats.windowed += len(seg.pieces) > 1
                rows.append(Row(file, line, row_text(item), seg.tokens))
                segments.append(seg)
                n_tokens += len(seg.tokens)
                if n_tokens >= self.settings.chunk_tokens:
                    yield rows, self._vectors(segments)
                    rows, segments, n_tokens = [], [], 0
        if rows:
            yield rows, self._vectors(segments)

    def _vectors(self, segments) -> List[numpy.ndarray]:
        return [self.layout.store(layers) for layers in row_layers(self.embedder, segments)]

    def embed_shard(self, shard: Shard, output: Path, on_tokens: Callable[[int], None] = lambda n: None) -> dict:
        """Write the shard's file atomically, then its progress record; returns the record."""
        stats = EmbedStats()
        path = shard_path(output, shard, self.settings.format)
        writer = WRITERS[self.settings.format](path, self.layout)
        numbered = ((shard.path, line, item) for line, item in shard_items(shard, stats))
        n_tokens = 0
        try:
            for rows, vectors in self.chunks(numbered, stats):
                writer.write(rows, vectors)
                tokens = sum(len(r.tokens) for r in rows)
                n_tokens += tokens
                on_tokens(tokens)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        record = {"shard": shard.index, "file": str(path.relative_to(output)), "rows": writer.rows,
                  "tokens": n_tokens, "stats": dataclasses.asdict(stats)}
        write_json(progress_path(output, shard), record)
        return record


@dataclasses.dataclass
class EmbedStats(CorpusStats):
    """The reader's counts, and the lines read in several pieces (sentences, or windows: nothing lost)."""

    windowed: int = 0

    def add(self, other: dict) -> None:
        for name, value in other.items():
            if name == "skipped_by_file":
                for file, n in value.items():
                    self.skipped_by_file[file] = self.skipped_by_file.get(file, 0) + n
            else:
                setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        text = super().summary()
        if self.windowed:
            text += f", {self.windowed} read in several pieces (sentences, or windows of long lines)"
        return text


def read_record(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
