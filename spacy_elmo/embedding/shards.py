"""The input cut into shards: fixed runs of lines of one file, the same whatever the number of processes.

A planning pass counts each file's lines (Docs of a ``.spacy`` file) and notes where every shard starts, so
that a process reads only its own shards, seeking straight to them. The pass also counts whitespace words:
the estimate behind the expected output size and the progress bar.
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from ..pretraining.corpus import CorpusStats, Item, file_kind, numbered_items

SCAN_BLOCK = 1 << 20


@dataclass(frozen=True)
class Shard:
    """Lines ``first_line`` to ``first_line + lines - 1`` of ``path``, starting at byte (or Doc) ``offset``."""

    index: int
    path: str
    offset: int
    first_line: int
    lines: int
    words: int  # whitespace words: an estimate of its tokens

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Shard":
        return cls(**data)


def _text_runs(path: Path, shard_lines: int) -> Iterator[Tuple[int, int, int]]:
    """``(offset, lines, words)`` of each run of ``shard_lines`` lines; lines end at ``\\n`` as the reader's do."""
    with path.open("rb") as handle:
        start, lines, words, partial = 0, 0, 0, False
        while True:
            data = handle.readline(SCAN_BLOCK)
            if not data:
                break
            words += len(data.split())
            partial = not data.endswith(b"\n")
            if partial:
                continue
            lines += 1
            if lines == shard_lines:
                yield start, lines, words
                start, lines, words = handle.tell(), 0, 0
        if partial:
            lines += 1
        if lines:
            yield start, lines, words


def _spacy_runs(path: Path, shard_lines: int) -> Iterator[Tuple[int, int, int]]:
    from spacy.tokens import DocBin

    try:
        lengths = [len(t) for t in DocBin().from_disk(path).tokens]
    except Exception as err:  # DocBin raises several types on corrupt files
        raise ValueError(f"Input file {path} is not a readable .spacy file: {err}") from err
    for start in range(0, len(lengths), shard_lines):
        run = lengths[start : start + shard_lines]
        yield start, len(run), sum(run)


def plan_shards(files: Sequence[Path], shard_lines: int) -> List[Shard]:
    """Every file's shards, in file order."""
    shards: List[Shard] = []
    for path in files:
        runs = _spacy_runs if file_kind(path) == "spacy" else _text_runs
        first = 0
        for offset, lines, words in runs(path, shard_lines):
            shards.append(Shard(len(shards), str(path), offset, first, lines, words))
            first += lines
    return shards


def shard_items(shard: Shard, stats: CorpusStats) -> Iterator[Tuple[int, Item]]:
    """``(line number in its file, counted from 0, item)`` for the shard's usable lines."""
    return numbered_items(Path(shard.path), stats, shard.offset, shard.lines, shard.first_line)
