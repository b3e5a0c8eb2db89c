"""The input cut into shards: fixed runs of lines of one file, the same whatever the number of processes.

A planning pass counts each file's lines (Docs of a ``.spacy`` file) and notes where every shard starts, so
that a process reads only its own shards, seeking straight to them. The pass also counts the tokens each
shard will give, through the run's tokenizer: the expected output size and the progress bar count what is
embedded.
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..pretraining.corpus import CorpusStats, Item, every_item, file_kind, numbered_items

Counter = Callable[[Sequence[Item]], int]


@dataclass(frozen=True)
class Shard:
    """Lines ``first_line`` to ``first_line + lines - 1`` of ``path``, starting at byte (or Doc) ``offset``."""

    index: int
    path: str
    offset: int
    first_line: int
    lines: int
    words: int  # the tokens it will give (see plan_shards)

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Shard":
        return cls(**data)


def _text_runs(path: Path, shard_lines: int, count: Counter) -> Iterator[Tuple[int, int, int]]:
    """``(offset, lines, tokens)`` of each run of ``shard_lines`` lines, read as the worker reads them (lines
    cut, skipped and decoded alike)."""
    start, lines, items = 0, 0, []
    for after, item in every_item(path, 0, CorpusStats()):
        lines += 1
        if item is not None:
            items.append(item)
        if lines == shard_lines:
            yield start, lines, count(items)
            start, lines, items = after, 0, []
    if lines:
        yield start, lines, count(items)


def whitespace_words(items: Sequence[Item]) -> int:
    return sum(len(i.split()) if isinstance(i, str) else len(i) for i in items)


def _spacy_runs(path: Path, shard_lines: int, count: Counter) -> Iterator[Tuple[int, int, int]]:
    from spacy.tokens import DocBin

    try:
        lengths = [len(t) for t in DocBin().from_disk(path).tokens]  # whitespace tokens: rare, not dropped here
    except Exception as err:  # DocBin raises several types on corrupt files
        raise ValueError(f"Input file {path} is not a readable .spacy file: {err}") from err
    for start in range(0, len(lengths), shard_lines):
        run = lengths[start : start + shard_lines]
        yield start, len(run), sum(run)


def plan_shards(files: Sequence[Path], shard_lines: int, count: Optional[Counter] = None) -> List[Shard]:
    """Every file's shards, in file order. ``count``: the tokens the worker will embed from a list of items
    (:meth:`Segmenter.count_tokens`); without it, whitespace words (an estimate that spaCy's tokenizer
    exceeds by a fifth on tweets)."""
    count = count or whitespace_words
    shards: List[Shard] = []
    for path in files:
        runs = _spacy_runs if file_kind(path) == "spacy" else _text_runs
        first = 0
        for offset, lines, words in runs(path, shard_lines, count):
            shards.append(Shard(len(shards), str(path), offset, first, lines, words))
            first += lines
    return shards


def shard_items(shard: Shard, stats: CorpusStats) -> Iterator[Tuple[int, Item]]:
    """``(line number in its file, counted from 0, item)`` for the shard's usable lines."""
    return numbered_items(Path(shard.path), stats, shard.offset, shard.lines, shard.first_line)
