"""The LM's output vocabulary: most frequent tokens first, plus ``<S>``, ``</S>`` and ``<UNK>``.

Frequency order matters: the adaptive softmax puts the first ids in its head cluster. The file
(``vocab.jsonl``) holds one JSON string per line, so that every token string round-trips: bilm-tf's plain
one-token-per-line ``vocab.txt`` cannot hold a token with a line break, and readers that split lines on
``\r``, ``\x85`` or ``\u2028`` (as Python's text mode and ``str.splitlines`` do) break tokens that
hold them. Those characters are escaped, so the file's lines are lines for any reader.
"""
import json
import math
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from ..files import existing_file

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"
SPECIALS = (BOS, EOS, UNK)
FILE = "vocab.jsonl"
LEGACY_FILE = "vocab.txt"  # spacy-elmo 0.1's file: one token per line, no token held "\n"
# line breaks of str.splitlines that JSON leaves unescaped
_UNESCAPED_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _line(token: str) -> str:
    text = json.dumps(token, ensure_ascii=False)
    for char, escape in _UNESCAPED_BREAKS.items():
        text = text.replace(char, escape)
    return text


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
        every sequence gives one ``<S>`` and one ``</S>`` (besides the literal ``<S>`` / ``</S>`` tokens of
        the text, which are the marks, as in bilm-tf), so :meth:`unigram_log_prob` is a real unigram LM.
        """
        if size < len(SPECIALS) + 1:
            raise ValueError(f"Vocabulary size must be at least {len(SPECIALS) + 1}, got {size}")
        ranked = sorted(
            ((w, c) for w, c in counts.items() if c >= min_count and w not in SPECIALS),
            key=lambda wc: (-wc[1], wc[0]),
        )[: size - len(SPECIALS)]
        if not ranked:
            raise ValueError(f"No token occurs at least {min_count} times: lower min_count")
        tokens = [BOS, EOS, UNK] + [w for w, _ in ranked]
        return cls(tokens).with_counts(counts, n_sequences)

    def with_counts(self, counts: Counter, n_sequences: int) -> "Vocab":
        """This vocabulary with counts taken from ``counts`` (tokens outside it count for ``<UNK>``)."""
        own = [counts.get(t, 0) for t in self.tokens]
        own[self.bos] += n_sequences
        own[self.eos] += n_sequences
        own[self.unk] = sum(counts.values()) - sum(c for t, c in counts.items() if t in self.index and t != UNK)
        return Vocab(self.tokens, own)

    def unigram_log_probs(self) -> List[float]:
        """Add-one smoothed unigram log probabilities (needs counts)."""
        if self.counts is None:
            raise ValueError("This vocabulary has no counts")
        total = sum(self.counts) + len(self.counts)
        return [math.log((c + 1) / total) for c in self.counts]

    def to_file(self, path: Union[str, Path]) -> None:
        with Path(path).open("w", encoding="utf8", newline="\n") as handle:
            handle.writelines(_line(token) + "\n" for token in self.tokens)

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Vocab":
        """A vocabulary written by :meth:`to_file`."""
        path = Path(path)
        return cls._from_lines(path, [_token(line, i + 1, path) for i, line in enumerate(_lines(path))])

    @classmethod
    def from_legacy_file(cls, path: Union[str, Path]) -> "Vocab":
        """A ``vocab.txt`` of spacy-elmo 0.1: one token per line, split on ``\n`` only, as it was written."""
        path = Path(path)
        return cls._from_lines(path, _lines(path))

    @classmethod
    def from_directory(cls, directory: Union[str, Path]) -> "Vocab":
        """The vocabulary of a pretrain output directory: its :data:`FILE`, else a :data:`LEGACY_FILE`."""
        directory = Path(directory)
        if not (directory / FILE).exists() and (directory / LEGACY_FILE).exists():
            return cls.from_legacy_file(directory / LEGACY_FILE)
        return cls.from_file(directory / FILE)

    @classmethod
    def _from_lines(cls, path: Path, tokens: List[str]) -> "Vocab":
        try:
            return cls(tokens)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def _lines(path: Path) -> List[str]:
    path = existing_file(path, "Vocabulary file")
    try:
        lines = path.read_bytes().decode("utf8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"Vocabulary file {path} is not UTF-8 text (byte {err.start})") from err
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _token(line: str, number: int, path: Path) -> str:
    try:
        token = json.loads(line)
    except json.JSONDecodeError:
        token = None
    if not isinstance(token, str):
        raise ValueError(f"Vocabulary file {path}, line {number}: not a JSON string: {line[:80]!r}")
    return token
