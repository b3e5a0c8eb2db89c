"""One pass over the training text before a run: token counts, the held-out set, input checks."""
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from .corpus import CorpusStats, Item, Tokenizer, is_heldout, read_items
from .vocab import Vocab

CHUNK = 20_000


@dataclass
class Scan:
    counts: Counter
    n_sequences: int
    dev: List[List[str]]
    stats: CorpusStats
    dev_stats: CorpusStats = field(default_factory=CorpusStats)

    @property
    def n_tokens(self) -> int:
        return sum(self.counts.values())

    def fingerprint(self) -> Tuple[int, int, int]:
        """Changes when the training text changes (checked on resume)."""
        return self.n_sequences, self.n_tokens, len(self.counts)


def _tokenized(
    path: Path, tokenizer: Tokenizer, stats: CorpusStats, heldout: float
) -> Iterator[Tuple[List[List[str]], List[List[str]]]]:
    """Training and held-out sequences of one file, a chunk at a time; an error if it has no usable text."""
    train: List[Item] = []
    dev: List[Item] = []
    used = stats.lines
    for _, item in read_items(path, 0, stats):
        (dev if is_heldout(item, heldout) else train).append(item)
        if len(train) + len(dev) >= CHUNK:
            yield tokenizer(train), tokenizer(dev)
            train, dev = [], []
    yield tokenizer(train), tokenizer(dev)
    if stats.lines == used:
        raise ValueError(f"Input file {path} has no usable text ({stats.skipped_by_file.get(str(path), 0)} lines skipped)")


def scan(
    files: Sequence[Path], tokenizer: Tokenizer, heldout: float, dev_files: Optional[Sequence[Path]] = None,
    dev_max_sequences: int = 2000,
) -> Scan:
    """Count the training tokens; keep up to ``dev_max_sequences`` held-out sequences.

    Held-out text comes from ``dev_files`` when given, else from a stable ``heldout`` fraction of the lines.
    """
    stats = CorpusStats()
    counts: Counter = Counter()
    n_sequences = 0
    dev: List[List[str]] = []
    for path in files:
        for train, held in _tokenized(path, tokenizer, stats, 0.0 if dev_files else heldout):
            for seq in train:
                counts.update(seq)
            n_sequences += len(train)
            dev.extend(held[: dev_max_sequences - len(dev)])
    if n_sequences == 0:
        raise ValueError("The training text has no usable sequences")
    dev_stats = CorpusStats()
    for path in dev_files or ():
        for held, _ in _tokenized(path, tokenizer, dev_stats, 0.0):
            dev.extend(held[: dev_max_sequences - len(dev)])
    return Scan(counts, n_sequences, dev, stats, dev_stats)


def unigram_perplexity(vocab: Vocab, sequences: Sequence[Sequence[str]]) -> float:
    """Perplexity of the forward LM's targets (every token, then ``</S>``) under the unigram model."""
    log_probs = vocab.unigram_log_probs()
    total, n = 0.0, 0
    for seq in sequences:
        ids = vocab.ids(seq) + [vocab.eos]
        total += sum(log_probs[i] for i in ids)
        n += len(ids)
    return math.exp(-total / n) if n else float("nan")
