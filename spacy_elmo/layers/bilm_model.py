"""The biLM as a thinc layer: Docs in, one ``[n_layers, n_tokens, width]`` array per Doc out.

The layer owns everything that reads the text: its settings (``model.attrs["settings"]``), the torch
biLM (its one shim) and the caches derived from both (``model.attrs["runtime"]``).
"""
from collections.abc import Sequence as SequenceABC
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import numpy
import srsly
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, PyTorchShim, torch2xp, xp2torch
from thinc.types import Floats3d

from ..bilm.embedder import Embedder, plan_batches
from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..io import bilm_from_bytes, bilm_to_bytes
from ..sequences import doc_sequences
from .listener import replace_listener, replacement_config
from .runtime import BiLMRuntime, BiLMSettings, DocLayerCache, RuntimeSlot


@registry.architectures("spacy-elmo.BiLM.v2")
def BiLMModel(
    options: Optional[Dict[str, Any]] = None,
    window: int = 128,
    max_batch_tokens: int = 4096,
    cache_size: int = 50_000,
    doc_cache_size: int = 100_000,
    device: str = "auto",
    precision: str = "exact",
    frozen: bool = True,
) -> Model[List[Doc], List[Floats3d]]:
    """The biLM over Docs. With ``options`` (the published ``options.json`` content) the torch module
    is built at once; without, the ``elmo`` component installs it when its weights are loaded.

    window: the longest sequence the biLM reads: sentences when boundaries are set, else the whole Doc,
        cut into windows of at most this many tokens (after sentence-final punctuation when possible).
    max_batch_tokens: padded tokens per biLM batch; sequences are sorted by length across Docs.
    cache_size: token vectors kept by the character-CNN cache (0 turns it off).
    doc_cache_size: with a frozen biLM, the layers of this many tokens of Docs already seen are kept, so
        training epochs after the first (and repeated evaluations) do not rerun the biLM; memory is
        ``doc_cache_size * n_layers * width * 4`` bytes (0.3 GB for 100k tokens of ``small``); 0 turns it off.
    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    precision: "exact" (float32) or "fast" (bfloat16 products at inference; see spacy_elmo.bilm.precision).
    frozen: the biLM weights are never updated in training.
    """
    settings = BiLMSettings(
        window=window, max_batch_tokens=max_batch_tokens, cache_size=cache_size, doc_cache_size=doc_cache_size,
        device=device, precision=precision, frozen=frozen,
    )
    attrs = {"settings": settings, "runtime": RuntimeSlot(), "replace_listener": replace_listener}
    model: Model[List[Doc], List[Floats3d]] = Model("elmo_bilm", forward, attrs=attrs)
    if options is not None:
        set_bilm(model, BiLM(BiLMOptions.from_dict(options)))
    return model


@registry.architectures("spacy-elmo.BiLM.v1")
def BiLMModel_v1(options: Optional[Dict[str, Any]] = None) -> Model[List[Doc], List[Floats3d]]:
    """``spacy-elmo.BiLM.v2`` with its default settings."""
    return BiLMModel(options)


def get_settings(model: Model) -> BiLMSettings:
    return model.attrs["settings"]


def set_settings(model: Model, settings: BiLMSettings) -> None:
    """Read with ``settings`` from now on (the biLM moves to their device; the caches start afresh)."""
    model.attrs["settings"] = settings
    if has_bilm(model):
        set_bilm(model, get_bilm(model))


def set_bilm(model: Model, bilm: BiLM) -> None:
    """Install ``bilm`` as the layer's torch module (replacing any earlier one), on the settings' device."""
    bilm = bilm.to(get_settings(model).torch_device).eval()
    model.shims[:] = [PyTorchShim(bilm, serialize_model=_serialize_bilm, deserialize_model=_deserialize_bilm)]
    model.attrs["replace_listener_cfg"] = replacement_config(bilm.options.to_dict())


def _serialize_bilm(bilm: BiLM) -> bytes:
    return srsly.msgpack_dumps(bilm_to_bytes(bilm))


def _deserialize_bilm(bilm: BiLM, data: bytes, device: torch.device) -> BiLM:
    """A new module, so that the caches of the old one are not used with the new weights."""
    return bilm_from_bytes(srsly.msgpack_loads(data), "biLM layer bytes").to(device)


def get_bilm(model: Model) -> BiLM:
    if not model.shims:
        raise ValueError(
            "The ELMo biLM has no weights yet: give the 'elmo' component `weights` (and `options` for hdf5) "
            "or a loader in [initialize.components.elmo], then call nlp.initialize()"
        )
    return model.shims[0]._model


def has_bilm(model: Model) -> bool:
    return bool(model.shims)


def get_runtime(model: Model) -> BiLMRuntime:
    """The caches of the layer's current biLM and settings (made on first use after either changes).

    Threads that race here each get a consistent runtime; one of them is kept.
    """
    bilm, settings, slot = get_bilm(model), get_settings(model), model.attrs["runtime"]
    runtime = slot.runtime
    if runtime is None or runtime.bilm is not bilm or runtime.settings is not settings:
        runtime = slot.runtime = BiLMRuntime(bilm, settings)
    return runtime


def get_embedder(model: Model) -> Embedder:
    """The layer's :class:`Embedder`, holding its character-CNN cache."""
    return get_runtime(model).embedder


def get_doc_cache(model: Model) -> Optional[DocLayerCache]:
    """The layer's Doc cache: only for a frozen biLM, and None when ``doc_cache_size`` is 0."""
    return get_runtime(model).doc_cache


SequenceKey = Tuple[Tuple[str, ...], ...]


def _doc_key(doc: Doc, window: int) -> SequenceKey:
    """What the biLM reads of a Doc: its sequences' token strings (the Doc cache's key)."""
    return tuple(tuple(t.text for t in doc[start:end]) for start, end in doc_sequences(doc, window))


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats3d], Callable]:
    runtime = get_runtime(model)  # one runtime for the whole call, whatever other threads do
    window = runtime.settings.window
    if is_train and not runtime.settings.frozen:
        runtime.weights_changed()  # the weights change after this step
        return _forward_with_grad(model, runtime.embedder, [_doc_key(doc, window) for doc in docs])
    cache = runtime.doc_cache
    found: List[Optional[numpy.ndarray]] = [None] * len(docs)
    direct: List[int] = []  # Docs computed without the cache: read lazily, keeping memory flat
    keyed: Dict[Tuple[Tuple[str, ...], ...], List[int]] = {}  # Docs to compute once and cache, by key
    for d, doc in enumerate(docs):
        if cache is None or len(doc) > cache.max_tokens:
            direct.append(d)
            continue
        key = _doc_key(doc, window)
        hit = cache.get(key)
        if hit is None:
            keyed.setdefault(key, []).append(d)  # a Doc repeated within the batch is computed once
        else:
            found[d] = hit
    new_keys = list(keyed)
    lazy: List[Sequence[Sequence[str]]] = [_lazy_sequences(docs[d], window) for d in direct]
    computed = _embed_docs(runtime.embedder, [*lazy, *new_keys])
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


class _LazySequence(SequenceABC):
    """A sequence's token strings, made when the biLM reads them rather than all at once."""

    def __init__(self, doc: Doc, start: int, end: int) -> None:
        self.doc, self.start, self.end = doc, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i):
        return self.doc[self.start : self.end][i].text

    def __iter__(self) -> Iterator[str]:
        return (token.text for token in self.doc[self.start : self.end])


def _lazy_sequences(doc: Doc, window: int) -> List[_LazySequence]:
    return [_LazySequence(doc, start, end) for start, end in doc_sequences(doc, window)]


def _embed_docs(embedder: Embedder, docs: Sequence[Sequence[Sequence[str]]]) -> List[numpy.ndarray]:
    """``[n_layers, n_tokens, width]`` per Doc (given as its sequences), each sequence written into place
    as its batch finishes."""
    opts = embedder.bilm.options
    out = [numpy.empty((opts.n_output_layers, sum(map(len, seqs)), opts.output_dim), dtype=numpy.float32)
           for seqs in docs]
    places: List[Tuple[int, int]] = []  # (doc, first token) of every sequence
    for d, seqs in enumerate(docs):
        start = 0
        for seq in seqs:
            places.append((d, start))
            start += len(seq)

    def put(i: int, layers: numpy.ndarray) -> None:
        d, start = places[i]
        out[d][:, start : start + layers.shape[1]] = layers

    embedder.embed_into([seq for seqs in docs for seq in seqs], put)
    return out


def _forward_with_grad(model: Model, embedder: Embedder, docs: List[SequenceKey]):
    """The differentiable path (fine-tuning): one tensor per Doc, gradients back into the biLM."""
    bilm = embedder.bilm
    bilm.train()
    owners = [d for d, seqs in enumerate(docs) for _ in seqs]
    sequences = [seq for seqs in docs for seq in seqs]
    outputs_per_seq: List[Optional[torch.Tensor]] = [None] * len(sequences)
    with torch.enable_grad():
        for batch in plan_batches([len(s) for s in sequences], embedder.max_batch_tokens):
            layers, lengths = embedder.batch_layers([sequences[i] for i in batch])
            for b, i in enumerate(batch):
                outputs_per_seq[i] = layers[:, b, : int(lengths[b])]
        per_doc: List[List[torch.Tensor]] = [[] for _ in docs]
        for owner, output in zip(owners, outputs_per_seq):
            if output is not None:
                per_doc[owner].append(output)
        tensors = [torch.cat(p, dim=1) if p else None for p in per_doc]
    opts = bilm.options
    empty = model.ops.alloc3f(opts.n_output_layers, 0, opts.output_dim)
    outputs = [empty if t is None else model.ops.asarray3f(cast(Floats3d, torch2xp(t.detach(), ops=model.ops))) for t in tensors]

    def backprop(d_outputs: List[Floats3d]) -> List[Doc]:
        pairs = [(t, xp2torch(d, device=t.device)) for t, d in zip(tensors, d_outputs) if t is not None]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
        return []

    return outputs, backprop
