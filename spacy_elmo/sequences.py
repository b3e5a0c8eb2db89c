"""The sequences the biLM reads: a Doc's sentences, or windows of it, as token ranges.

"Sequence" is the one word for what the biLM reads in one go (wrapped in its sentence marks): a
sentence when the Doc has boundaries, else a window of at most ``window`` tokens.
"""
from typing import List, Tuple

from spacy.tokens import Doc

SENTENCE_END = frozenset({".", "!", "?", "…"})


def doc_sequences(doc: Doc, window: int) -> List[Tuple[int, int]]:
    """Token ranges covering ``doc``: its sentences when boundaries are set, else the whole Doc, each
    cut into sequences of at most ``window`` tokens.

    A long sentence (or Doc) is cut after the last sentence-final punctuation in the second half of
    the window when there is one, else at the window's end.
    """
    if len(doc) == 0:
        return []
    spans = [(s.start, s.end) for s in doc.sents] if doc.has_annotation("SENT_START") else [(0, len(doc))]
    out: List[Tuple[int, int]] = []
    for start, end in spans:
        while end - start > window:
            cut = start + window
            for i in range(start + window - 1, start + window // 2, -1):
                if doc[i].text in SENTENCE_END:
                    cut = i + 1
                    break
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out
