"""The biLM as a thinc layer: Docs in, one ``[n_layers, n_tokens, width]`` array per Doc out."""
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

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

_EMBEDDERS: "weakref.WeakKeyDictionary[BiLM, Embedder]" = weakref.WeakKeyDictionary()
DEFAULT_ATTRS = {"window": 128, "max_batch_tokens": 4096, "cache_size": 50_000, "frozen": True}


@registry.architectures("spacy-elmo.BiLM.v1")
def BiLMModel(options: Optional[Dict[str, Any]] = None) -> Model[List[Doc], List[Floats3d]]:
    """The biLM over Docs. With ``options`` (the published ``options.json`` content) the torch module
    is built at once; without, the ``elmo`` component installs it when its weights are loaded.
    """
    model: Model[List[Doc], List[Floats3d]] = Model("elmo_bilm", forward, attrs=dict(DEFAULT_ATTRS))
    if options is not None:
        set_bilm(model, BiLM(BiLMOptions.from_dict(options)))
    return model


def set_bilm(model: Model, bilm: BiLM) -> None:
    """Install ``bilm`` as the layer's torch module (replacing any earlier one)."""
    model.shims[:] = [PyTorchShim(bilm)]


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
    return embedder


def _pieces(docs: List[Doc], window: int) -> Tuple[List[int], List[List[str]]]:
    owners: List[int] = []
    words: List[List[str]] = []
    for d, doc in enumerate(docs):
        for start, end in doc_windows(doc, window):
            owners.append(d)
            words.append([t.text for t in doc[start:end]])
    return owners, words


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats3d], Callable]:
    embedder = get_embedder(model)
    opts = embedder.bilm.options
    owners, words = _pieces(docs, model.attrs["window"])
    if is_train and not model.attrs["frozen"]:
        return _forward_with_grad(model, embedder, docs, owners, words)
    pieces = embedder.embed(words)
    per_doc: List[List[numpy.ndarray]] = [[] for _ in docs]
    for owner, piece in zip(owners, pieces):
        per_doc[owner].append(piece)
    empty = numpy.zeros((opts.n_output_layers, 0, opts.output_dim), dtype=numpy.float32)
    outputs = [model.ops.asarray3f(numpy.concatenate(p, axis=1) if p else empty) for p in per_doc]
    return outputs, lambda d_outputs: []


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
