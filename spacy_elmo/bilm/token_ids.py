"""How a token becomes ids: the one place where the biLM families differ before the character CNN.

* :class:`PublishedBytes` (bilm-tf, AllenNLP, NLPL, native): the token's UTF-8 bytes (see
  :mod:`.characters`); no word embedding.
* :class:`CharVocabulary` (ELMoForManyLangs): a learned vocabulary of Unicode characters (``char.dic``)
  and optionally of words (``word.dic``), whose embedding is joined to the CNN's output.

Both give ``[n, 50]`` character ids in which 0 is a padded token position (a zero embedding row) and
``padding_id`` the padding inside a token, so the CNN, its crop, its CPU kernels and the token-vector
cache treat every family alike. ``to_dict``/``from_dict`` are what a native directory stores.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy

from .characters import BOS_TOKEN, EOS_TOKEN, MAX_CHARS, N_CHARACTERS, PADDING_ID, words_to_ids

Ids = Tuple[numpy.ndarray, Optional[numpy.ndarray]]  # [n, 50] character ids, [n] word ids (or None)

# ELMoForManyLangs' special entries of char.dic / word.dic
EFML_BOS, EFML_EOS, EFML_OOV, EFML_PAD, EFML_BOW, EFML_EOW = "<bos>", "<eos>", "<oov>", "<pad>", "<bow>", "<eow>"
EFML_CHAR_SPECIALS = (EFML_BOS, EFML_EOS, EFML_OOV, EFML_PAD, EFML_BOW, EFML_EOW)
EFML_WORD_SPECIALS = (EFML_OOV, EFML_PAD)


class PublishedBytes:
    """bilm-tf's UTF-8 byte ids; ``<S>`` and ``</S>`` are the sentence marks."""

    kind = "utf8-bytes"
    bos, eos = BOS_TOKEN, EOS_TOKEN
    n_characters = N_CHARACTERS
    padding_id = PADDING_ID
    n_words = 0
    word_dim = 0

    def ids(self, words: Sequence[str]) -> Ids:
        return words_to_ids(words), None

    def to_dict(self) -> Optional[Dict[str, Any]]:
        return None  # the default: nothing to store

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublishedBytes)

    def __hash__(self) -> int:
        return hash(self.kind)


class CharVocabulary:
    """ELMoForManyLangs' token ids, as its ``create_one_batch`` and ``read_list`` make them.

    A token longer than ``max_chars - 2`` characters (code points) is cut to that length, for its
    characters and its word id alike. Its characters are wrapped in the begin- and end-of-word ids, but
    the released code looks those up swapped (``bow_id = char2id['<eow>']``), and the released models
    were trained that way: begin-of-word is ``<eow>``'s id and end-of-word ``<bow>``'s. ``<bos>`` and
    ``<eos>`` (also as text in a sentence) are one character, their own entry. Unknown characters and
    words are ``<oov>``; the rest of the 50 positions is ``<pad>``. Every character id is shifted by one
    so that 0 stays the padded token position; word ids are not.
    """

    kind = "elmoformanylangs"
    bos, eos = EFML_BOS, EFML_EOS

    def __init__(
        self,
        characters: Mapping[str, int],
        words: Optional[Mapping[str, int]] = None,
        word_dim: int = 0,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.characters = dict(characters)
        self.words = dict(words) if words is not None and word_dim > 0 else None
        self.word_dim = word_dim if self.words is not None else 0
        self.max_chars = max_chars
        c = self.characters
        self.n_characters = max(c.values()) + 2  # the shift by one, and row 0
        self.padding_id = c[EFML_PAD] + 1
        self._oov_char = c[EFML_OOV] + 1
        self._begin, self._end = c[EFML_EOW] + 1, c[EFML_BOW] + 1  # swapped, as released
        self._marks = {mark: c[mark] + 1 for mark in (EFML_BOS, EFML_EOS)}
        self.n_words = 0 if self.words is None else max(self.words.values()) + 1
        self._oov_word = -1 if self.words is None else self.words[EFML_OOV]

    def ids(self, words: Sequence[str]) -> Ids:
        chars = numpy.full((len(words), self.max_chars), self.padding_id, dtype=numpy.int64)
        word_ids = None if self.words is None else numpy.empty(len(words), dtype=numpy.int64)
        table, oov = self.characters, self._oov_char
        for row, word in enumerate(words):
            if len(word) + 2 > self.max_chars:
                word = word[: self.max_chars - 2]
            chars[row, 0] = self._begin
            mark = self._marks.get(word)
            if mark is not None:
                chars[row, 1] = mark
                chars[row, 2] = self._end
            else:
                chars[row, 1 : 1 + len(word)] = [table.get(ch, oov - 1) + 1 for ch in word]
                chars[row, 1 + len(word)] = self._end
            if word_ids is not None:
                assert self.words is not None
                word_ids[row] = self.words.get(word, self._oov_word)
        return chars, word_ids

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "max_chars": self.max_chars,
            "word_dim": self.word_dim,
            "characters": _by_id(self.characters),
            "words": None if self.words is None else _by_id(self.words),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocabulary) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.kind, self.n_characters, self.n_words))


TokenIds = Union[PublishedBytes, CharVocabulary]


def _by_id(table: Mapping[str, int]) -> List[Optional[str]]:
    """The entries in id order (ids with no entry: None), so that a list stores the whole map."""
    out: List[Optional[str]] = [None] * (max(table.values()) + 1)
    for entry, i in table.items():
        out[i] = entry
    return out


def _from_list(entries: Any, what: str) -> Dict[str, int]:
    if not isinstance(entries, list) or not all(e is None or isinstance(e, str) for e in entries):
        raise ValueError(f"token ids: '{what}' must be a list of strings (or null), one per id")
    return {entry: i for i, entry in enumerate(entries) if entry is not None}


def token_ids_from_dict(data: Optional[Mapping[str, Any]]) -> TokenIds:
    """The inverse of ``to_dict`` (None: the published bytes)."""
    if data is None:
        return PublishedBytes()
    if data.get("kind") != CharVocabulary.kind:
        raise ValueError(f"token ids: unknown kind {data.get('kind')!r} (expected {CharVocabulary.kind!r})")
    characters = _from_list(data.get("characters"), "characters")
    missing = [s for s in EFML_CHAR_SPECIALS if s not in characters]
    if missing:
        raise ValueError(f"token ids: the character vocabulary lacks the special entries {missing}")
    words = None if data.get("words") is None else _from_list(data.get("words"), "words")
    if words is not None and [s for s in EFML_WORD_SPECIALS if s not in words]:
        raise ValueError(f"token ids: the word vocabulary lacks the special entries {list(EFML_WORD_SPECIALS)}")
    word_dim, max_chars = data.get("word_dim", 0), data.get("max_chars", MAX_CHARS)
    if not isinstance(word_dim, int) or word_dim < 0 or not isinstance(max_chars, int) or not 3 <= max_chars <= 1000:
        raise ValueError(f"token ids: word_dim {word_dim!r} / max_chars {max_chars!r} out of range")
    return CharVocabulary(characters, words, word_dim, max_chars)
