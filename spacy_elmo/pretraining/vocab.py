"""The LM's output vocabulary: most frequent tokens first, plus ``<S>``, ``</S>`` and ``<UNK>``.

The file format is bilm-tf's: one token per line. Frequency order matters: the adaptive softmax puts the
first ids in its head cluster.
"""
import math
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"
SPECIALS = (BOS, EOS, UNK)


class Vocab:
    def __init__(self, tokens: Sequence[str], counts: Optional[Sequence[int]] = None) -> None:
        missing = [s for s in SPECIALS if s not in tokens]
        if missing:
            raise ValueError(f"Vocabulary lacks the special tokens {missing}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("Vocabulary has duplicate tokens")
        self.tokens: List[str] = list(tokens)
        self.index: Dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.counts = list(counts) if counts is not None else None
        self.bos, self.eos, self.unk = (self.index[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def ids(self, words: Iterable[str]) -> List[int]:
        get, unk = self.index.get, self.unk
        return [get(w, unk) for w in words]

    @classmethod
    def build(cls, counts: Counter, n_sequences: int, size: int, min_count: int) -> "Vocab":
        """The ``size - 3`` most frequent tokens seen at least ``min_count`` times (ties by string).

        ``counts`` are training-token counts; the unknown tokens' total becomes the count of ``<UNK>`` and
        every sequence gives one ``<S>`` and one ``</S>``, so :meth:`unigram_log_prob` is a real unigram LM.
        """
        if size < len(SPECIALS) + 1:
            raise ValueError(f"Vocabulary size must be at least {len(SPECIALS) + 1}, got {size}")
        ranked = sorted(
            ((w, c) for w, c in counts.items() if c >= min_count and w not in SPECIALS and "\n" not in w),
            key=lambda wc: (-wc[1], wc[0]),
        )[: size - len(SPECIALS)]
        if not ranked:
            raise ValueError(f"No token occurs at least {min_count} times: lower min_count")
        known = sum(c for _, c in ranked)
        unknown = sum(counts.values()) - known
        tokens = [BOS, EOS, UNK] + [w for w, _ in ranked]
        return cls(tokens, [n_sequences, n_sequences, unknown] + [c for _, c in ranked])

    def with_counts(self, counts: Counter, n_sequences: int) -> "Vocab":
        """This vocabulary with counts taken from ``counts`` (tokens outside it count for ``<UNK>``)."""
        own = [counts.get(t, 0) for t in self.tokens]
        own[self.bos] = own[self.eos] = n_sequences
        own[self.unk] = sum(counts.values()) - sum(c for t, c in zip(self.tokens, own) if t not in SPECIALS)
        return Vocab(self.tokens, own)

    def unigram_log_probs(self) -> List[float]:
        """Add-one smoothed unigram log probabilities (needs counts)."""
        if self.counts is None:
            raise ValueError("This vocabulary has no counts")
        total = sum(self.counts) + len(self.counts)
        return [math.log((c + 1) / total) for c in self.counts]

    def to_file(self, path: Union[str, Path]) -> None:
        Path(path).write_text("\n".join(self.tokens) + "\n", encoding="utf8")

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Vocab":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Vocabulary file not found: {path}")
        tokens = path.read_text(encoding="utf8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        try:
            return cls(tokens)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
