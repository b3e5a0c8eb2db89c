"""Rows of tokens to their stored vectors: every piece through :meth:`Embedder.embed`, joined per row,
then the chosen layers in the chosen dtype."""
from collections import Counter
from typing import List, Sequence

import numpy

from ..bilm.embedder import Embedder
from .segment import Segmented

WARM_WORDS = 5_000  # a chunk's most frequent words, put in the character-CNN cache first


def select_layers(layers: numpy.ndarray, which: str) -> numpy.ndarray:
    """``[L, n, 2P]`` float32 to what is stored: all of it, the top layer ``[n, 2P]``, or the layers'
    average ``[n, 2P]`` (computed in float32, as ``numpy.average`` did in the old ``allennlp elmo``)."""
    if which == "all":
        return layers
    if which == "top":
        return layers[-1]
    return layers.mean(axis=0)


def row_layers(embedder: Embedder, rows: Sequence[Segmented]) -> List[numpy.ndarray]:
    """float32 ``[L, n_tokens, 2P]`` per row: its pieces' layers from one :meth:`Embedder.embed` call
    (token-budget batches sorted by length over the whole chunk), concatenated along the tokens."""
    counts = Counter(w for row in rows for w in row.tokens)
    embedder.warm_cache([w for w, _ in counts.most_common(WARM_WORDS)])
    pieces = [p for row in rows for p in row.pieces]
    outputs = iter(embedder.embed(pieces))
    out: List[numpy.ndarray] = []
    for row in rows:
        parts = [next(outputs) for _ in row.pieces]
        out.append(parts[0] if len(parts) == 1 else numpy.concatenate(parts, axis=1))
    return out


def stored(layers: numpy.ndarray, which: str, dtype: numpy.dtype) -> numpy.ndarray:
    return numpy.ascontiguousarray(select_layers(layers, which), dtype=dtype)
