"""The one Doc-level object that holds a Doc's biLM layers, and the ``._.elmo`` getters over it."""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

import numpy
import srsly
from spacy.tokens import Doc, Span, Token

DATA_ATTR = "elmo_data"
VECTOR_ATTR = "elmo"


@dataclass
class ElmoDocData:
    """All biLM layers of a Doc, ``[n_layers, n_tokens, width]`` float32, and how to mix them.

    ``weights`` are the per-layer mix weights (already normalised) scaled by ``gamma``; ``None``
    concatenates the layers instead.
    """

    layers: numpy.ndarray
    weights: Optional[numpy.ndarray] = None
    gamma: float = 1.0

    @property
    def width(self) -> int:
        n_layers, _, width = self.layers.shape
        return width * n_layers if self.weights is None else width

    def mixed(self, start: int = 0, end: Optional[int] = None) -> numpy.ndarray:
        """``[end - start, width]`` mixed vectors of a token range."""
        part = self.layers[:, start:end]
        if self.weights is None:
            return numpy.concatenate(list(part), axis=-1)
        return self.gamma * numpy.tensordot(self.weights, part, axes=1).astype(numpy.float32)

    def mean(self, start: int = 0, end: Optional[int] = None) -> numpy.ndarray:
        vectors = self.mixed(start, end)
        if len(vectors) == 0:
            return numpy.zeros(self.width, dtype=numpy.float32)
        return vectors.mean(axis=0)


def _data(doc: Doc) -> Optional[ElmoDocData]:
    return doc._.get(DATA_ATTR)


def _token_vector(token: Token) -> Optional[numpy.ndarray]:
    data = _data(token.doc)
    return None if data is None else data.mixed(token.i, token.i + 1)[0]


def _span_vector(span: Span) -> Optional[numpy.ndarray]:
    data = _data(span.doc)
    return None if data is None else data.mean(span.start, span.end)


def _doc_vector(doc: Doc) -> Optional[numpy.ndarray]:
    data = _data(doc)
    return None if data is None else data.mean()


def install_extensions() -> None:
    """Register ``Doc._.elmo_data`` and the ``._.elmo`` getters, once."""
    if not Doc.has_extension(DATA_ATTR):
        Doc.set_extension(DATA_ATTR, default=None)
    getters: Tuple[Tuple[Any, Callable[[Any], Optional[numpy.ndarray]]], ...] = (
        (Token, _token_vector), (Span, _span_vector), (Doc, _doc_vector))
    for cls, getter in getters:
        if not cls.has_extension(VECTOR_ATTR):
            cls.set_extension(VECTOR_ATTR, getter=getter)


# Docs cross process boundaries (nlp.pipe(n_process=...)) and disk (DocBin) as msgpack.
@srsly.msgpack_encoders("spacy_elmo_doc_data")
def _serialize(obj: Union[ElmoDocData, object], chain=None):
    if isinstance(obj, ElmoDocData):
        return {"__elmo_doc_data__": True, "layers": obj.layers, "weights": obj.weights, "gamma": obj.gamma}
    return obj if chain is None else chain(obj)


@srsly.msgpack_decoders("spacy_elmo_doc_data")
def _deserialize(obj, chain=None):
    if isinstance(obj, dict) and obj.get("__elmo_doc_data__"):
        return ElmoDocData(layers=obj["layers"], weights=obj["weights"], gamma=obj["gamma"])
    return obj if chain is None else chain(obj)
