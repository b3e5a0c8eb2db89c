"""The biLM as a thinc layer: Docs in, one ``[n_layers, n_tokens, width]`` array per Doc out."""
import io
import weakref
from collections.abc import Sequence as SequenceABC
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple, cast

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, PyTorchShim, torch2xp, xp2torch
from thinc.types import Floats3d

from ..bilm.embedder import Embedder, plan_batches
from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..pipeline.windows import doc_windows
from .listener import replace_listener, replacement_config

_EMBEDDERS: "weakref.WeakKeyDictionary[BiLM, Embedder]" = weakref.WeakKeyDictionary()
_DOC_CACHES: "weakref.WeakKeyDictionary[BiLM, DocLayerCache]" = weakref.WeakKeyDictionary()
DEFAULT_ATTRS = {"window": 128, "max_batch_tokens": 4096, "cache_size": 50_000, "doc_cache_size": 100_000, "frozen": True,
                 "precision": "exact"}


@registry.architectures("spacy-elmo.BiLM.v1")
def BiLMModel(options: Optional[Dict[str, Any]] = None) -> Model[List[Doc], List[Floats3d]]:
    """The biLM over Docs. With ``options`` (the published ``options.json`` content) the torch module
    is built at once; without, the ``elmo`` component installs it when its weights are loaded.
    """
    attrs = {**DEFAULT_ATTRS, "replace_listener": replace_listener}
    model: Model[List[Doc], List[Floats3d]] = Model("elmo_bilm", forward, attrs=attrs)
    if options is not None:
        set_bilm(model, BiLM(BiLMOptions.from_dict(options)))
    return model


def set_bilm(model: Model, bilm: BiLM) -> None:
    """Install ``bilm`` as the layer's torch module (replacing any earlier one)."""
    model.shims[:] = [PyTorchShim(bilm, serialize_model=_serialize_bilm, deserialize_model=_deserialize_bilm)]
    model.attrs["replace_listener_cfg"] = replacement_config(bilm.options.to_dict())


def _serialize_bilm(bilm: BiLM) -> bytes:
    buffer = io.BytesIO()
    torch.save(bilm.state_dict(), buffer)
    return buffer.getvalue()


def _deserialize_bilm(bilm: BiLM, data: bytes, device: torch.device) -> BiLM:
    """Weights only: never unpickle. Forgets the caches computed with the old weights."""
    bilm.load_state_dict(torch.load(io.BytesIO(data), map_location=device, weights_only=True))
    _EMBEDDERS.pop(bilm, None)
    _DOC_CACHES.pop(bilm, None)
    return bilm.to(device)


def get_bilm(model: Model) -> BiLM:
    if not model.shims:
        raise ValueError(
            "The ELMo biLM has no weights yet: give the 'elmo' component `weights` (and `options` for hdf5) "
            "or a loader in [initialize.components.elmo], then call nlp.initialize()"
        )
    return model.shims[0]._model


def has_bilm(model: Model) -> bool:
    return bool(model.shims)


def get_embedder(model: Model) -> Embedder:
    """The model's :class:`Embedder` (one per torch module, holding its character-CNN cache)."""
    bilm = get_bilm(model)
    embedder = _EMBEDDERS.get(bilm)
    if embedder is None:
        embedder = _EMBEDDERS[bilm] = Embedder(bilm, cache_size=model.attrs["cache_size"])
    embedder.max_batch_tokens = model.attrs["max_batch_tokens"]
    embedder.precision = model.attrs.get("precision", "exact")  # "exact" | "fast": spacy_elmo.bilm.precision
    return embedder


class DocLayerCache:
    """The layers of Docs already seen, up to ``max_tokens`` tokens in all; once full it keeps what it has.

    Keeping the first Docs (rather than the most recent) suits training, which visits the same Docs in
    every epoch: a cache smaller than the corpus still saves its share of every epoch. Keys are a Doc's
    windows as token strings, so a hit is exact. The arrays are shared, so read-only. Only valid while the
    weights do not change.
    """

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.n_tokens = 0
        self.entries: Dict[Hashable, numpy.ndarray] = {}

    def get(self, key: Hashable) -> Optional[numpy.ndarray]:
        return self.entries.get(key)

    def put(self, key: Hashable, layers: numpy.ndarray) -> None:
        n = layers.shape[1]
        if self.n_tokens + n > self.max_tokens or key in self.entries:
            return
        self.entries[key] = layers
        self.n_tokens += n


def get_doc_cache(model: Model) -> Optional[DocLayerCache]:
    """The layer's Doc cache: only for a frozen biLM, and None when ``doc_cache_size`` is 0."""
    size = model.attrs.get("doc_cache_size", 0)
    if not model.attrs["frozen"] or size <= 0:
        return None
    bilm = get_bilm(model)
    cache = _DOC_CACHES.get(bilm)
    if cache is None or cache.max_tokens != size:
        cache = _DOC_CACHES[bilm] = DocLayerCache(size)
    return cache


def _doc_pieces(doc: Doc, window: int) -> Tuple[Tuple[str, ...], ...]:
    """What the biLM reads of a Doc: its windows' token strings (also the Doc's cache key)."""
    return tuple(tuple(t.text for t in doc[start:end]) for start, end in doc_windows(doc, window))


def _pieces(docs: List[Doc], window: int) -> Tuple[List[int], List[Tuple[str, ...]]]:
    owners: List[int] = []
    words: List[Tuple[str, ...]] = []
    for d, doc in enumerate(docs):
        for piece in _doc_pieces(doc, window):
            owners.append(d)
            words.append(piece)
    return owners, words


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats3d], Callable]:
    embedder = get_embedder(model)
    if is_train and not model.attrs["frozen"]:
        embedder.cache.clear()  # the weights change after this step
        owners, words = _pieces(docs, model.attrs["window"])
        return _forward_with_grad(model, embedder, docs, owners, words)
    window = model.attrs["window"]
    cache = get_doc_cache(model)
    found: List[Optional[numpy.ndarray]] = [None] * len(docs)
    direct: List[int] = []  # Docs computed without the cache: read lazily, keeping memory flat
    keyed: Dict[Tuple[Tuple[str, ...], ...], List[int]] = {}  # Docs to compute once and cache, by key
    for d, doc in enumerate(docs):
        if cache is None or len(doc) > cache.max_tokens:
            direct.append(d)
            continue
        key = _doc_pieces(doc, window)
        hit = cache.get(key)
        if hit is None:
            keyed.setdefault(key, []).append(d)  # a Doc repeated within the batch is computed once
        else:
            found[d] = hit
    new_keys = list(keyed)
    lazy: List[Sequence[Sequence[str]]] = [_lazy_windows(docs[d], window) for d in direct]
    computed = _embed_docs(embedder, [*lazy, *new_keys])
    for d, layers in zip(direct, computed):
        found[d] = layers
    for key, layers in zip(new_keys, computed[len(direct) :]):
        layers.flags.writeable = False  # shared by every Doc that gets it
        assert cache is not None  # only Docs go by key that the cache can hold
        cache.put(key, layers)
        for d in keyed[key]:
            found[d] = layers
    filled = cast(List[Floats3d], found)  # every Doc has its layers now
    return [model.ops.asarray3f(layers) for layers in filled], lambda d_outputs: []


class _Window(SequenceABC):
    """A Doc window's token strings, made when the biLM reads them rather than all at once."""

    def __init__(self, doc: Doc, start: int, end: int) -> None:
        self.doc, self.start, self.end = doc, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i):
        return self.doc[self.start : self.end][i].text

    def __iter__(self) -> Iterator[str]:
        return (token.text for token in self.doc[self.start : self.end])


def _lazy_windows(doc: Doc, window: int) -> List[_Window]:
    return [_Window(doc, start, end) for start, end in doc_windows(doc, window)]


def _embed_docs(embedder: Embedder, keys: Sequence[Sequence[Sequence[str]]]) -> List[numpy.ndarray]:
    """``[n_layers, n_tokens, width]`` per Doc, its windows written into place as their batches finish."""
    opts = embedder.bilm.options
    out = [numpy.empty((opts.n_output_layers, sum(map(len, key)), opts.output_dim), dtype=numpy.float32)
           for key in keys]
    places: List[Tuple[int, int]] = []  # (doc, first token) of every window
    for d, key in enumerate(keys):
        start = 0
        for piece in key:
            places.append((d, start))
            start += len(piece)

    def put(i: int, layers: numpy.ndarray) -> None:
        d, start = places[i]
        out[d][:, start : start + layers.shape[1]] = layers

    embedder.embed_into([piece for key in keys for piece in key], put)
    return out


def _forward_with_grad(model, embedder: Embedder, docs, owners, words):
    bilm = embedder.bilm
    bilm.train()
    pieces: List[Optional[torch.Tensor]] = [None] * len(words)
    with torch.enable_grad():
        for batch in plan_batches([len(w) for w in words], embedder.max_batch_tokens):
            layers, lengths = embedder.batch_layers([words[i] for i in batch])
            for b, i in enumerate(batch):
                pieces[i] = layers[:, b, : int(lengths[b])]
        per_doc: List[List[torch.Tensor]] = [[] for _ in docs]
        for owner, piece in zip(owners, pieces):
            if piece is not None:
                per_doc[owner].append(piece)
        tensors = [torch.cat(p, dim=1) if p else None for p in per_doc]
    opts = bilm.options
    empty = model.ops.alloc3f(opts.n_output_layers, 0, opts.output_dim)
    outputs = [empty if t is None else model.ops.asarray3f(torch2xp(t.detach(), ops=model.ops)) for t in tensors]

    def backprop(d_outputs: List[Floats3d]) -> List[Doc]:
        pairs = [(t, xp2torch(d, device=t.device)) for t, d in zip(tensors, d_outputs) if t is not None]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
        return []

    return outputs, backprop
