"""Token strings to the published ELMo character ids (UTF-8 bytes, word marks, padding, +1 offset).

As in bilm-tf's ``UnicodeCharsVocabulary`` and AllenNLP's ``ELMoCharacterMapper``, a token equal to
``<S>`` or ``</S>`` is the sentence mark itself, not its bytes: the published biLMs read it that way.
"""
from typing import Sequence, Union

import numpy

MAX_CHARS = 50
BOS_CHAR = 256  # beginning of sentence
EOS_CHAR = 257  # end of sentence
BOW_CHAR = 258  # beginning of word
EOW_CHAR = 259  # end of word
PAD_CHAR = 260  # padding inside a word
N_CHARACTERS = 262  # 0 (padded token position) + the 261 ids above, shifted by one
PADDING_ID = PAD_CHAR + 1  # the padding inside a word, as an id (after the shift)


def _marked(payload: Union[Sequence[int], numpy.ndarray]) -> numpy.ndarray:
    ids = numpy.full(MAX_CHARS, PAD_CHAR, dtype=numpy.int64)
    ids[0] = BOW_CHAR
    ids[1 : 1 + len(payload)] = payload
    ids[1 + len(payload)] = EOW_CHAR
    return ids + 1


BOS_IDS = _marked([BOS_CHAR])
EOS_IDS = _marked([EOS_CHAR])
BOS_TOKEN, EOS_TOKEN = "<S>", "</S>"
_MARKS = {BOS_TOKEN: BOS_IDS, EOS_TOKEN: EOS_IDS}


def word_to_ids(word: str) -> numpy.ndarray:
    """The 50 character ids of one token, exactly as the published biLM saw them.

    ``<S>`` and ``</S>`` give the sentence marks' ids. Characters that cannot be encoded (lone surrogates)
    are dropped, as the reference does; the UTF-8 bytes are truncated to 48, which may cut a multi-byte
    character, also as the reference does.
    """
    mark = _MARKS.get(word)
    if mark is not None:
        return mark.copy()
    data = word.encode("utf-8", "ignore")[: MAX_CHARS - 2]
    return _marked(numpy.frombuffer(data, dtype=numpy.uint8))


def words_to_ids(words: Sequence[str]) -> numpy.ndarray:
    """``[len(words), 50]`` int64 character ids."""
    out = numpy.empty((len(words), MAX_CHARS), dtype=numpy.int64)
    for i, word in enumerate(words):
        out[i] = word_to_ids(word)
    return out
