"""Deterministic, resumable batches: a pure function of (seed, epoch, file, chunk offset).

Each epoch visits the files in a seeded order and every file in chunks; a chunk's sequences are sorted by
length (random tie-break), cut into batches of at most ``budget`` padded tokens (sentence marks included)
and the batches shuffled. A :class:`Position` names the next batch, so a run resumes by re-reading one chunk.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple

import numpy
import torch

from ..bilm.characters import BOS_IDS, EOS_IDS, word_to_ids
from .corpus import CorpusStats, Tokenizer, read_chunk
from .vocab import Vocab

Sequences = List[List[str]]


class Position(NamedTuple):
    """The next batch: ``batch`` of the chunk at ``offset`` of the ``file``-th file of ``epoch``'s order."""

    epoch: int = 0
    file: int = 0
    offset: int = 0
    batch: int = 0


@dataclass
class Batch:
    """One batch as tensors. ``char_ids``: ``[U, 50]`` for the unique words, rows 0 and 1 the sentence marks;
    ``index``: ``[B, T]`` rows of ``char_ids``; ``word_ids``: ``[B, T]`` vocabulary ids; ``lengths``: ``[B]``
    with the marks. Each direction predicts ``lengths - 1`` targets per sequence."""

    char_ids: torch.Tensor
    index: torch.Tensor
    word_ids: torch.Tensor
    lengths: torch.Tensor

    @property
    def n_targets(self) -> int:
        return int((self.lengths - 1).sum())

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.char_ids, self.index, self.word_ids, self.lengths)))


class CharIdCache:
    """Character ids per word string, bounded."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.ids: Dict[str, numpy.ndarray] = {}

    def __call__(self, word: str) -> numpy.ndarray:
        found = self.ids.get(word)
        if found is None:
            if len(self.ids) >= self.capacity:
                self.ids = {}
            found = self.ids[word] = word_to_ids(word)
        return found


def tensorize(sequences: Sequence[Sequence[str]], vocab: Vocab, chars: CharIdCache) -> Batch:
    keys: Dict[object, int] = {0: 0, 1: 1}  # int keys: the marks never collide with a word
    rows = [[keys.setdefault(w, len(keys)) for w in seq] for seq in sequences]
    words = list(keys)[2:]
    char_ids = numpy.stack([BOS_IDS, EOS_IDS] + [chars(w) for w in words])
    steps = max(len(r) for r in rows) + 2
    index = numpy.ones((len(rows), steps), dtype=numpy.int64)
    word_ids = numpy.full((len(rows), steps), vocab.eos, dtype=numpy.int64)
    index[:, 0] = 0
    word_ids[:, 0] = vocab.bos
    for b, (row, seq) in enumerate(zip(rows, sequences)):
        index[b, 1 : 1 + len(row)] = row
        word_ids[b, 1 : 1 + len(row)] = vocab.ids(seq)
    lengths = torch.tensor([len(r) + 2 for r in rows])
    return Batch(torch.from_numpy(char_ids), torch.from_numpy(index), torch.from_numpy(word_ids), lengths)


def plan(sequences: Sequences, budget: int, rng: numpy.random.Generator) -> List[Sequences]:
    """Length-sorted batches of at most ``budget`` padded tokens, in shuffled order."""
    ties = rng.permutation(len(sequences))
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), ties[i]))
    batches: List[Sequences] = []
    current: Sequences = []
    for i in order:
        seq = sequences[i]
        if current and (len(seq) + 2) * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(seq)
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


def shard(batch: Sequences, rank: int, world: int) -> Sequences:
    """This process's share of a global batch: every ``world``-th sequence of the length-sorted batch."""
    return batch[rank::world]


class BatchStream:
    """Endless global batches from ``files`` with the position after each."""

    def __init__(
        self, files: Sequence[Path], tokenizer: Tokenizer, budget: int, seed: int, heldout: float,
        chunk_items: int = 20_000, min_sequences: int = 1,
    ) -> None:
        self.files = list(files)
        self.tokenizer = tokenizer
        self.budget = budget
        self.seed = seed
        self.heldout = heldout
        self.chunk_items = chunk_items
        self.min_sequences = min_sequences

    def file_order(self, epoch: int) -> List[int]:
        return [int(i) for i in numpy.random.default_rng([self.seed, epoch]).permutation(len(self.files))]

    def chunk(self, epoch: int, file: int, offset: int) -> Tuple[List[Sequences], int]:
        """The planned batches of one chunk and the offset of the next chunk (-1 at the end of the file)."""
        path = self.files[self.file_order(epoch)[file]]
        items, after = read_chunk(path, offset, self.chunk_items, self.heldout, CorpusStats())
        sequences = self.tokenizer(items)
        rng = numpy.random.default_rng([self.seed, epoch, file, offset])
        batches = [b for b in plan(sequences, self.budget, rng) if len(b) >= self.min_sequences]
        return batches, after

    def start(self, position: Position) -> Iterator[Tuple[Position, Sequences]]:
        """Batches from ``position`` on, for ever."""
        epoch, file, offset, first = position
        while True:
            yielded = False
            while file < len(self.files):
                while offset >= 0:
                    batches, after = self.chunk(epoch, file, offset)
                    for b in range(first, len(batches)):
                        yielded = True
                        yield Position(epoch, file, offset, b + 1), batches[b]
                    offset, first = after, 0
                file, offset = file + 1, 0
            if not yielded and position == Position():
                raise ValueError("The training text gives no batches (too little text for the batch size?)")
            epoch, file, position = epoch + 1, 0, Position()
