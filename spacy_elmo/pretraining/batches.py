"""Deterministic, resumable batches: a pure function of (seed, epoch, the files' offsets at a chunk's start).

Each epoch reads all files side by side: a chunk takes from every file a share of items in proportion to the
file's size, so files of different text are mixed all through an epoch and run out together. A chunk's
sequences are sorted by length (random tie-break), cut into batches of at most ``budget`` padded tokens
(sentence marks included) and the batches shuffled. A :class:`Position` names the next batch, so a run
resumes by re-reading one chunk.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy
import torch

from ..bilm.token_ids import PublishedBytes, TokenIds
from .corpus import CorpusStats, Item, Tokenizer, read_chunk
from .vocab import Vocab

Sequences = List[List[str]]


class Position(NamedTuple):
    """The next batch: ``batch`` of ``epoch``'s chunk that starts at ``offsets`` (one per file, -1 once a file
    has run out; empty: the start of the epoch)."""

    epoch: int = 0
    offsets: Tuple[int, ...] = ()
    batch: int = 0

    @classmethod
    def restore(cls, saved: Sequence[Any], n_files: int) -> "Position":
        """The position as a checkpoint stores it (``[epoch, offsets, batch]``), checked against the files."""
        if len(saved) != 3 or not isinstance(saved[1], (list, tuple)):
            raise ValueError(f"The checkpoint's data position {list(saved)} is from an older spacy-elmo, which read "
                             f"the files one after the other; start a new run (--init-weights keeps the biLM)")
        epoch, offsets, batch = saved
        if offsets and len(offsets) != n_files:
            raise ValueError(f"The checkpoint read {len(offsets)} input files, this run has {n_files}")
        return cls(int(epoch), tuple(int(o) for o in offsets), int(batch))


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
    """Character ids per word string, as the biLM's ``tokens`` make them, bounded. For a biLM with a word
    embedding (ELMoForManyLangs), each row ends with one more column: the word's id in the biLM's own
    word vocabulary (see :meth:`BiLMLanguageModel.top_states`)."""

    def __init__(self, tokens: Optional[TokenIds] = None, capacity: int = 200_000) -> None:
        self.tokens: TokenIds = PublishedBytes() if tokens is None else tokens
        self.capacity = capacity
        self.ids: Dict[str, numpy.ndarray] = {}
        self.marks = self._rows([self.tokens.bos, self.tokens.eos])

    def _rows(self, words: Sequence[str]) -> numpy.ndarray:
        chars, word_ids = self.tokens.ids(words)
        return chars if word_ids is None else numpy.concatenate([chars, word_ids[:, None]], axis=1)

    def __call__(self, word: str) -> numpy.ndarray:
        found = self.ids.get(word)
        if found is None:
            if len(self.ids) >= self.capacity:
                self.ids = {}
            found = self.ids[word] = self._rows([word])[0]
        return found


def tensorize(sequences: Sequence[Sequence[str]], vocab: Vocab, chars: CharIdCache) -> Batch:
    keys: Dict[Any, int] = {0: 0, 1: 1}  # int keys: the marks never collide with a word
    rows = [[keys.setdefault(w, len(keys)) for w in seq] for seq in sequences]
    words = list(keys)[2:]
    char_ids = numpy.concatenate([chars.marks, numpy.stack([chars(w) for w in words])]) if words else chars.marks
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


def length_groups(order: Iterable[int], lengths: Sequence[int], budget: int) -> List[List[int]]:
    """Consecutive runs of ``order`` (ascending in length) of at most ``budget`` padded tokens each."""
    groups: List[List[int]] = []
    current: List[int] = []
    for i in order:
        if current and (lengths[i] + 2) * (len(current) + 1) > budget:
            groups.append(current)
            current = []
        current.append(i)
    return groups + [current] if current else groups


def plan(sequences: Sequences, budget: int, rng: numpy.random.Generator) -> List[Sequences]:
    """Length-sorted batches of at most ``budget`` padded tokens, in shuffled order."""
    lengths = [len(s) for s in sequences]
    ties = rng.permutation(len(sequences))
    order = sorted(range(len(sequences)), key=lambda i: (lengths[i], ties[i]))
    groups = length_groups(order, lengths, budget)
    return [[sequences[j] for j in groups[i]] for i in rng.permutation(len(groups))]


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
        self.min_sequences = min_sequences
        sizes = [max(path.stat().st_size, 1) for path in self.files]
        self.shares = [max(1, round(chunk_items * size / sum(sizes))) for size in sizes]

    def chunk(self, epoch: int, offsets: Tuple[int, ...]) -> Tuple[List[Sequences], Tuple[int, ...]]:
        """The planned batches of the chunk at ``offsets`` and the offsets of the next chunk."""
        items: List[Item] = []
        after: List[int] = []
        for path, offset, share in zip(self.files, offsets, self.shares):
            if offset < 0:
                after.append(-1)
                continue
            taken, next_offset = read_chunk(path, offset, share, self.heldout, CorpusStats())
            items.extend(taken)
            after.append(next_offset)
        rng = numpy.random.default_rng([self.seed, epoch, *(offset + 1 for offset in offsets)])
        batches = [b for b in plan(self.tokenizer(items), self.budget, rng) if len(b) >= self.min_sequences]
        return batches, tuple(after)

    def start(self, position: Position) -> Iterator[Tuple[Position, Sequences]]:
        """Batches from ``position`` on, for ever."""
        epoch, offsets, first = position.epoch, position.offsets, position.batch
        from_start = not offsets
        while True:
            offsets = offsets or (0,) * len(self.files)
            yielded = False
            while any(offset >= 0 for offset in offsets):
                batches, after = self.chunk(epoch, offsets)
                for b in range(first, len(batches)):
                    yielded = True
                    yield Position(epoch, offsets, b + 1), batches[b]
                offsets, first = after, 0
            if from_start and not yielded:
                raise ValueError("The training text gives no batches (too little text for the batch size?)")
            epoch, offsets, from_start = epoch + 1, (), True
