"""Token strings to the published ELMo character ids (UTF-8 bytes, word marks, padding, +1 offset)."""
from typing import Sequence, Union

import numpy

MAX_CHARS = 50
BOS_CHAR = 256  # beginning of sentence
EOS_CHAR = 257  # end of sentence
BOW_CHAR = 258  # beginning of word
EOW_CHAR = 259  # end of word
PAD_CHAR = 260  # padding inside a word
N_CHARACTERS = 262  # 0 (padded token position) + the 261 ids above, shifted by one


def _marked(payload: Union[Sequence[int], numpy.ndarray]) -> numpy.ndarray:
    ids = numpy.full(MAX_CHARS, PAD_CHAR, dtype=numpy.int64)
    ids[0] = BOW_CHAR
    ids[1 : 1 + len(payload)] = payload
    ids[1 + len(payload)] = EOW_CHAR
    return ids + 1


BOS_IDS = _marked([BOS_CHAR])
EOS_IDS = _marked([EOS_CHAR])


def word_to_ids(word: str) -> numpy.ndarray:
    """The 50 character ids of one token, exactly as the published biLM saw them.

    Characters that cannot be encoded (lone surrogates) are dropped, as the reference does; the
    UTF-8 bytes are truncated to 48, which may cut a multi-byte character, also as the reference does.
    """
    data = word.encode("utf-8", "ignore")[: MAX_CHARS - 2]
    return _marked(numpy.frombuffer(data, dtype=numpy.uint8))


def words_to_ids(words: Sequence[str]) -> numpy.ndarray:
    """``[len(words), 50]`` int64 character ids."""
    out = numpy.empty((len(words), MAX_CHARS), dtype=numpy.int64)
    for i, word in enumerate(words):
        out[i] = word_to_ids(word)
    return out
