"""The ``elmo`` pipeline component: runs the biLM over Doc tokens and keeps every layer on the Doc."""
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union, cast

import numpy
import srsly
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import ensure_path
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from ..bilm.model import BiLM
from ..bilm.precision import MODES
from ..io import bilm_from_bytes, bilm_to_bytes, load_bilm, load_native, save_native
from ..layers.bilm_model import get_bilm, get_doc_cache, get_embedder, has_bilm, set_bilm
from ..layers.listener import LISTENER_NAME, ElmoListenerModel, listener_batch_id
from .doc_data import DATA_ATTR, ElmoDocData, install_extensions

MIXES = ("average", "top", "all", "weighted")

DEFAULT_CONFIG = {
    "model": {"@architectures": "spacy-elmo.BiLM.v1"},
    "weights": None,
    "options": None,
    "max_batch_tokens": 4096,
    "window": 128,
    "cache_size": 50_000,
    "doc_cache_size": 100_000,
    "device": "auto",
    "mix": "average",
    "mix_weights": None,
    "gamma": 1.0,
    "set_tensor": False,
    "frozen": True,
    "precision": "exact",
}


@Language.factory("elmo", default_config=DEFAULT_CONFIG)
def make_elmo(
    nlp: Language,
    name: str,
    model: Model,
    weights: Optional[str],
    options: Optional[str],
    max_batch_tokens: int,
    window: int,
    cache_size: int,
    doc_cache_size: int,
    device: str,
    mix: str,
    mix_weights: Optional[List[float]],
    gamma: float,
    set_tensor: bool,
    frozen: bool,
    precision: str,
) -> "ElmoComponent":
    """ELMo over Doc tokens.

    weights, options: a native biLM directory, or a published hdf5 file and its options.json; loaded on
        first use (or give a loader in ``[initialize.components.elmo]``). A saved pipeline carries the biLM.
    max_batch_tokens: padded tokens per biLM batch; sequences are sorted by length across Docs.
    window: the longest sequence the biLM reads: sentences when boundaries are set, else the whole Doc,
        cut into windows of at most this many tokens (after sentence-final punctuation when possible).
    cache_size: token vectors kept by the character-CNN cache (0 turns it off).
    doc_cache_size: with a frozen biLM, the layers of this many tokens of Docs already seen are kept, so
        training epochs after the first (and repeated evaluations) do not rerun the biLM; memory is
        ``doc_cache_size * n_layers * width * 4`` bytes (0.3 GB for 100k tokens of ``small``); 0 turns it off.
    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    mix: what ``._.elmo`` returns: "average" of the layers, "top" layer, "all" layers concatenated, or
        "weighted" by ``mix_weights`` (normalised to sum 1); ``gamma`` scales every mix but "all".
    set_tensor: also write the mixed vectors to ``doc.tensor`` (``token.vector``, ``similarity``).
    frozen: the biLM weights are never updated in training.
    precision: "exact" (float32) or "fast" (bfloat16 products at inference; see spacy_elmo.bilm.precision).
    """
    return ElmoComponent(
        nlp.vocab, model, name=name, weights=weights, options=options, max_batch_tokens=max_batch_tokens,
        window=window, cache_size=cache_size, doc_cache_size=doc_cache_size, device=device, mix=mix,
        mix_weights=mix_weights, gamma=gamma, set_tensor=set_tensor, frozen=frozen, precision=precision,
    )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ElmoComponent(TrainablePipe):
    """Stores ``doc._.elmo_data`` (all layers) and feeds the layers to downstream ELMo listeners."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        *,
        name: str = "elmo",
        weights: Optional[str] = None,
        options: Optional[str] = None,
        max_batch_tokens: int = 4096,
        window: int = 128,
        cache_size: int = 50_000,
        doc_cache_size: int = 100_000,
        device: str = "auto",
        mix: str = "average",
        mix_weights: Optional[List[float]] = None,
        gamma: float = 1.0,
        set_tensor: bool = False,
        frozen: bool = True,
        precision: str = "exact",
    ) -> None:
        if mix not in MIXES:
            raise ValueError(f"elmo: mix must be one of {MIXES}, got {mix!r}")
        if (mix == "weighted") != (mix_weights is not None):
            raise ValueError("elmo: give mix_weights exactly when mix = 'weighted'")
        if max_batch_tokens < 1 or window < 1:
            raise ValueError("elmo: max_batch_tokens and window must be positive")
        if cache_size < 0 or doc_cache_size < 0:
            raise ValueError("elmo: cache_size and doc_cache_size must be 0 (off) or positive")
        if precision not in MODES:
            raise ValueError(f"elmo: precision must be one of {MODES}, got {precision!r}")
        install_extensions()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.listener_map: Dict[str, List[ElmoListenerModel]] = {}
        self.cfg: Dict[str, Any] = {
            "weights": weights, "options": options, "max_batch_tokens": max_batch_tokens, "window": window,
            "cache_size": cache_size, "doc_cache_size": doc_cache_size, "device": device, "mix": mix,
            "mix_weights": mix_weights, "gamma": gamma, "set_tensor": set_tensor, "frozen": frozen,
            "precision": precision,
        }
        model.attrs.update(
            window=window, max_batch_tokens=max_batch_tokens, cache_size=cache_size, doc_cache_size=doc_cache_size,
            frozen=frozen, precision=precision,
        )
        self._pid = os.getpid()
        if has_bilm(model):
            self._install(get_bilm(model))

    # -- the biLM ---------------------------------------------------------------------------------
    def _install(self, bilm: BiLM) -> None:
        set_bilm(self.model, bilm.to(resolve_device(self.cfg["device"])).eval())

    def _ensure_bilm(self) -> None:
        if os.getpid() != self._pid:
            self._enter_child_process()
        if not has_bilm(self.model):
            if self.cfg["weights"] is None:
                get_bilm(self.model)  # raises the explanatory error
            self._install(load_bilm(self.cfg["weights"], self.cfg["options"]))

    def _enter_child_process(self) -> None:
        """After a fork (``nlp.pipe(n_process=...)``): one torch thread, as the parent's pool is gone."""
        self._pid = os.getpid()
        torch.set_num_threads(1)
        if has_bilm(self.model) and get_bilm(self.model).lstm.layers[0].weight_ih.is_cuda:
            raise RuntimeError("elmo: CUDA cannot be used in forked worker processes; use n_process=1 on GPU")

    @property
    def bilm(self) -> BiLM:
        """The torch biLM (loaded on first access when the component has weight paths)."""
        self._ensure_bilm()
        return get_bilm(self.model)

    @property
    def layer_weights(self) -> Optional[numpy.ndarray]:
        """The normalised per-layer weights of ``._.elmo`` (None for "all")."""
        n_layers = self.bilm.options.n_output_layers
        mix = self.cfg["mix"]
        if mix == "all":
            return None
        if mix == "average":
            return numpy.full(n_layers, 1.0 / n_layers, dtype=numpy.float32)
        if mix == "top":
            return numpy.eye(n_layers, dtype=numpy.float32)[-1]
        weights = numpy.asarray(self.cfg["mix_weights"], dtype=numpy.float32)
        if weights.shape != (n_layers,) or weights.sum() <= 0:
            raise ValueError(f"elmo: mix_weights needs {n_layers} non-negative weights, got {self.cfg['mix_weights']}")
        return weights / weights.sum()

    # -- prediction -------------------------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        buffer: List[Doc] = []
        for doc in stream:
            buffer.append(doc)
            if len(buffer) >= batch_size:
                yield from self._annotate(buffer)
                buffer = []
        if buffer:
            yield from self._annotate(buffer)

    def _annotate(self, docs: List[Doc]) -> List[Doc]:
        self.set_annotations(docs, self.predict(docs))
        return docs

    def predict(self, docs: Iterable[Doc]) -> List[Floats3d]:
        self._ensure_bilm()
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], layers: Sequence[Floats3d]) -> None:
        weights = self.layer_weights
        gamma = float(self.cfg["gamma"])
        for doc, doc_layers in zip(docs, layers):
            data = ElmoDocData(numpy.asarray(self.model.ops.to_numpy(doc_layers), dtype=numpy.float32), weights, gamma)
            doc._.set(DATA_ATTR, data)
            if self.cfg["set_tensor"]:
                doc.tensor = data.mixed()

    # -- listeners and training -------------------------------------------------------------------
    @property
    def listeners(self) -> List[ElmoListenerModel]:
        return [m for c in self.listening_components for m in self.listener_map[c]]

    @property
    def listening_components(self) -> List[str]:
        return list(self.listener_map.keys())

    def add_listener(self, listener: ElmoListenerModel, component_name: str) -> None:
        self.listener_map.setdefault(component_name, [])
        if listener not in self.listener_map[component_name]:
            self.listener_map[component_name].append(listener)

    def remove_listener(self, listener: ElmoListenerModel, component_name: str) -> bool:
        if listener in self.listener_map.get(component_name, []):
            self.listener_map[component_name].remove(listener)
            if not self.listener_map[component_name]:
                del self.listener_map[component_name]
            return True
        return False

    def find_listeners(self, component) -> None:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            for node in model.walk():
                if node.name == LISTENER_NAME and node.attrs.get("upstream_name") in ("*", self.name):
                    self.add_listener(cast(ElmoListenerModel, node), component.name)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Hand the batch's biLM layers to every listener; the biLM runs once, when the first listener
        asks for them.

        Running it then, rather than now, means that in spaCy's training loop (this update, then this
        component's ``finish_update``, then the listeners' updates) the layers are computed with the
        weights as ``finish_update`` left them, so with ``frozen = false`` the backward pass is exact.
        Gradients reach the biLM when every listener has passed its gradient back; they are applied by
        ``finish_update`` (or at once when ``sgd`` is given).
        """
        validate_examples(examples, "ElmoComponent.update")
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        listeners = self.listeners
        if not listeners:
            return losses
        docs = [eg.predicted for eg in examples]
        self._ensure_bilm()
        set_dropout_rate(self.model, drop)
        computed: List = []
        gradients: List[List[Floats3d]] = []

        def layers() -> List[Floats3d]:
            if not computed:
                computed.extend(self.model.begin_update(docs))
            return computed[0]

        def accumulate(d_layers: List[Floats3d]) -> List[Doc]:
            if self.cfg["frozen"]:
                return []
            gradients.append(d_layers)
            if len(gradients) == len(listeners):
                xp = self.model.ops.xp
                computed[1]([xp.sum(xp.stack(g), axis=0) for g in zip(*gradients)])
                if sgd is not None:
                    self.finish_update(sgd)
            return []

        batch_id = listener_batch_id(docs)
        for listener in listeners:
            listener.receive(batch_id, layers, accumulate)
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        if not self.cfg["frozen"]:
            self.model.finish_update(sgd)
            get_embedder(self.model).cache.clear()

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        loader: Optional[Callable[[], BiLM]] = None,
    ) -> None:
        """Load the weights: from ``loader`` when given (``[initialize.components.elmo]``), else from the
        component's ``weights`` / ``options``; a biLM already present is kept when neither is given.
        Then check that every listener expects the biLM's layer shapes, and, for a frozen biLM with
        listeners, fill the Doc cache with the training Docs in full-size biLM batches."""
        if loader is not None:
            self._install(loader())
        else:
            self._ensure_bilm()
        self._check_listeners()
        if get_examples is not None and self.listener_map:
            self._warm_doc_cache(get_examples)

    def _warm_doc_cache(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Training batches are small for the biLM; running it here on large batches makes the first
        epoch as cheap as the others."""
        cache = get_doc_cache(self.model)
        if cache is None:
            return
        chunk = 4 * self.cfg["max_batch_tokens"]
        docs: List[Doc] = []
        n_tokens = 0
        for eg in get_examples():
            if cache.n_tokens + n_tokens + len(eg.predicted) > cache.max_tokens:
                break
            docs.append(eg.predicted)
            n_tokens += len(eg.predicted)
            if n_tokens >= chunk:
                self.model.predict(docs)
                docs, n_tokens = [], 0
        if docs:
            self.model.predict(docs)

    def _check_listeners(self) -> None:
        opts = self.bilm.options
        for component, listeners in self.listener_map.items():
            for listener in listeners:
                mix = listener.layers[0]
                if (mix.get_dim("nL"), mix.get_dim("nI")) != (opts.n_output_layers, opts.output_dim):
                    raise ValueError(
                        f"elmo: the listener of '{component}' expects {mix.get_dim('nL')} layers of width "
                        f"{mix.get_dim('nI')}, but the biLM gives {opts.n_output_layers} of width "
                        f"{opts.output_dim}: set n_layers / width in its spacy-elmo.ElmoListener.v1 config"
                    )

    # -- serialization ----------------------------------------------------------------------------
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        directory: Path = ensure_path(path)
        directory.mkdir(parents=True, exist_ok=True)
        srsly.write_json(directory / "cfg", self.cfg)
        save_native(self.bilm, directory / "bilm")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        directory: Path = ensure_path(path)
        self.cfg.update(srsly.read_json(directory / "cfg"))
        self._install(load_native(directory / "bilm"))
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"cfg": self.cfg, "bilm": bilm_to_bytes(self.bilm)})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg.update(msg["cfg"])
        self._install(bilm_from_bytes(msg["bilm"]))
        return self

