"""The ``elmo`` pipeline component: runs the biLM over Doc tokens and keeps every layer on the Doc.

What reads the text (window, batch budget, caches, device, precision, frozen) is the biLM layer's
(``spacy-elmo.BiLM.v2``, the component's ``model``); what shapes the output (mix, gamma, set_tensor) and
where the weights come from are the component's own.
"""
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union, cast

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from ..bilm.model import BiLM
from ..doc_data import DATA_ATTR, ElmoDocData, install_extensions
from ..io import bilm_from_bytes, bilm_to_bytes, load_bilm, load_native, model_language, save_native
from ..layers.bilm_model import get_bilm, get_doc_cache, get_runtime, get_settings, has_bilm, set_bilm, set_settings
from ..layers.listener import LISTENER_NAME, ElmoListenerModel, listener_batch_id
from ..layers.runtime import BiLMSettings

MIXES = ("average", "top", "all", "weighted")


@Language.factory(
    "elmo",
    default_config={"model": {"@architectures": "spacy-elmo.BiLM.v2"}},
    assigns=[f"doc._.{DATA_ATTR}", "doc.tensor"],
)
def make_elmo(
    nlp: Language,
    name: str,
    model: Model,
    weights: Optional[str] = None,
    options: Optional[str] = None,
    mix: str = "average",
    mix_weights: Optional[List[float]] = None,
    gamma: float = 1.0,
    set_tensor: bool = False,
) -> "ElmoComponent":
    """ELMo over Doc tokens.

    model: the biLM layer, ``spacy-elmo.BiLM.v2``: its settings say how the text is read.
    weights, options: a native biLM directory, or a published hdf5 file and its options.json; loaded on
        first use (or give a loader in ``[initialize.components.elmo]``). A saved pipeline carries the biLM.
    mix: what ``._.elmo`` returns: "average" of the layers, "top" layer, "all" layers concatenated, or
        "weighted" by ``mix_weights`` (normalised to sum 1); ``gamma`` scales every mix but "all".
    set_tensor: also write the mixed vectors to ``doc.tensor`` (``token.vector``, ``similarity``).
    """
    component = ElmoComponent(
        nlp.vocab, model, name=name, weights=weights, options=options, mix=mix, mix_weights=mix_weights,
        gamma=gamma, set_tensor=set_tensor,
    )
    _PIPELINES[component] = weakref.ref(nlp)
    return component


# The pipeline each component was made for (weakly: neither keeps the other alive, and the component stays
# picklable), so that settings loaded from disk or bytes also reach the pipeline's config, which
# ``nlp.to_disk`` writes as config.cfg.
_PIPELINES: "weakref.WeakKeyDictionary[ElmoComponent, weakref.ref]" = weakref.WeakKeyDictionary()
OUTPUT_SETTINGS = ("mix", "mix_weights", "gamma", "set_tensor")


def _valid_mix_weights(weights: Sequence[float]) -> bool:
    try:
        values = numpy.asarray(weights, dtype=numpy.float64)
    except (TypeError, ValueError):
        return False
    return values.ndim == 1 and bool(numpy.isfinite(values).all() and (values >= 0).all() and values.sum() > 0)


def _check_output_settings(cfg: Dict) -> None:
    if cfg["mix"] not in MIXES:
        raise ValueError(f"elmo: mix must be one of {MIXES}, got {cfg['mix']!r}")
    if (cfg["mix"] == "weighted") != (cfg["mix_weights"] is not None):
        raise ValueError("elmo: give mix_weights exactly when mix = 'weighted'")
    if cfg["mix_weights"] is not None and not _valid_mix_weights(cfg["mix_weights"]):
        raise ValueError(f"elmo: mix_weights must be finite non-negative numbers, not all 0, got {cfg['mix_weights']}")


class ElmoComponent(TrainablePipe):
    """Stores ``doc._.elmo_data`` (all layers) and feeds the layers to downstream ELMo listeners."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        *,
        name: str,
        weights: Optional[str],
        options: Optional[str],
        mix: str,
        mix_weights: Optional[List[float]],
        gamma: float,
        set_tensor: bool,
    ) -> None:
        self.cfg: Dict[str, Any] = {  # JSON-like: replaced by what from_disk/from_bytes read
            "weights": weights, "options": options, "mix": mix, "mix_weights": mix_weights, "gamma": gamma,
            "set_tensor": set_tensor,
        }
        _check_output_settings(self.cfg)
        install_extensions()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.listener_map: Dict[str, List[ElmoListenerModel]] = {}

    # -- the biLM ---------------------------------------------------------------------------------
    @property
    def settings(self) -> BiLMSettings:
        """How the biLM layer reads the text (``model``'s settings)."""
        return get_settings(self.model)

    def _ensure_bilm(self) -> None:
        if not has_bilm(self.model):
            if self.cfg["weights"] is None:
                get_bilm(self.model)  # raises the explanatory error
            set_bilm(self.model, load_bilm(self.cfg["weights"], self.cfg["options"]))

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
        frozen = self.settings.frozen
        set_dropout_rate(self.model, drop)
        computed: List = []
        gradients: List[List[Floats3d]] = []

        def layers() -> List[Floats3d]:
            if not computed:
                computed.extend(self.model.begin_update(docs))
            return computed[0]

        def accumulate(d_layers: List[Floats3d]) -> List[Doc]:
            if frozen:
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
        if not self.settings.frozen:
            self.model.finish_update(sgd)
            get_runtime(self.model).weights_changed()

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
            set_bilm(self.model, loader())
        else:
            self._ensure_bilm()
        self._check_language(nlp)
        self._check_listeners()
        if get_examples is not None and self.listener_map:
            self._warm_doc_cache(get_examples)

    def _check_language(self, nlp: Optional[Language]) -> None:
        """A biLM whose files declare a language (NLPL meta.json) other than the pipeline's: say so."""
        declared = model_language(self.bilm)
        if nlp is not None and declared and declared.split("-")[0] != (nlp.lang or "").split("-")[0]:
            warnings.warn(
                f"elmo: the biLM's files declare the language '{declared}', but the pipeline is '{nlp.lang}': "
                f"its tokenizer feeds the biLM (use spacy.blank('{declared}') if that is the text's language)",
                stacklevel=2,
            )

    def _warm_doc_cache(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Training batches are small for the biLM; running it here on large batches makes the first
        epoch as cheap as the others."""
        cache = get_doc_cache(self.model)
        if cache is None:
            return
        chunk = 4 * self.settings.max_batch_tokens
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
    # cfg: the component's own settings; settings: the biLM layer's; bilm: the weights (native format).
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serializers = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "settings": lambda p: srsly.write_json(p, self.settings.to_dict()),
            "bilm": lambda p: save_native(self.bilm, p),
        }
        util.to_disk(path, serializers, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        deserializers = {
            "cfg": lambda p: self._load_cfg(srsly.read_json(p)),
            "settings": lambda p: self._load_settings(srsly.read_json(p)),
            "bilm": lambda p: set_bilm(self.model, load_native(p)),
        }
        util.from_disk(path, deserializers, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        # spaCy types the values as Callable[[], bytes], but msgpack-serialises whatever they return
        serializers: Dict[str, Callable[[], Any]] = {
            "cfg": lambda: self.cfg,
            "settings": lambda: self.settings.to_dict(),
            "bilm": lambda: bilm_to_bytes(self.bilm),
        }
        return util.to_bytes(serializers, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        deserializers = {
            "cfg": self._load_cfg,
            "settings": self._load_settings,
            "bilm": lambda data: set_bilm(self.model, bilm_from_bytes(data)),
        }
        util.from_bytes(bytes_data, deserializers, exclude)
        return self

    def _load_cfg(self, cfg: Dict) -> None:
        _check_output_settings(cfg)
        self.cfg = cfg
        self._config_follows()

    def _load_settings(self, data: Dict) -> None:
        set_settings(self.model, BiLMSettings.from_dict(data))
        self._config_follows()

    def _config_follows(self) -> None:
        """Write the settings the component now runs with into its pipeline's config (the paths in
        ``weights`` / ``options`` stay: the biLM travels with the pipeline)."""
        nlp = _PIPELINES.get(self, lambda: None)()
        if nlp is None or self.name not in nlp.component_names:
            return
        config = nlp.get_pipe_config(self.name)  # the pipeline's own copy, which nlp.config is built from
        for key in OUTPUT_SETTINGS:
            if config.get(key) != self.cfg[key]:
                config[key] = self.cfg[key]
        model = config.get("model")
        if not isinstance(model, dict) or model.get("@architectures") != "spacy-elmo.BiLM.v2":
            kept = {"options": model["options"]} if isinstance(model, dict) and "options" in model else {}
            config["model"] = model = {"@architectures": "spacy-elmo.BiLM.v2", **kept}
        for key, value in self.settings.to_dict().items():
            if model.get(key) != value:
                model[key] = value
