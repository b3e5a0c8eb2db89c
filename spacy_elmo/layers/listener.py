"""The ELMo listener: a downstream component's view of the upstream ``elmo`` component, through its own mix."""
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain
from thinc.types import Floats2d, Floats3d

from ..doc_data import DATA_ATTR
from .scalar_mix import ScalarMix

LISTENER_NAME = "elmo_listener"  # the ``elmo`` component finds its listeners by this node name
LISTENER_ARCH = "spacy-elmo.ElmoListener.v1"


def listener_batch_id(docs: Iterable[Doc]) -> int:
    """A content hash of a batch of Docs, so that a listener can check it received the batch it is asked
    for (the sum of the tokens' ORTH hashes, modulo 2**64)."""
    return int(sum(int(doc.to_array(ORTH).sum(dtype=numpy.uint64)) for doc in docs) % 2**64)


class ElmoListenerModel(Model):
    """Receives the biLM layers of a training batch from the upstream ``elmo`` component and mixes them.

    In prediction (and in training when nothing was received, as when the ``elmo`` component is frozen
    and annotating) the layers are read from ``doc._.elmo_data``.
    """

    def __init__(self, upstream_name: str, mix: Model, width: int) -> None:
        super().__init__(
            LISTENER_NAME, _forward, init=_init, dims={"nO": width}, layers=[mix],
            attrs={"upstream_name": upstream_name},
        )
        self._batch_id: Optional[int] = None
        self._received: Union[None, List[Floats3d], Callable[[], List[Floats3d]]] = None
        self._backprop: Optional[Callable] = None

    def receive(
        self, batch_id: int, layers: Union[List[Floats3d], Callable[[], List[Floats3d]]], backprop: Callable
    ) -> None:
        """Keep the upstream's layers for the batch (or a function that returns them, called when they are
        first needed) and the callback that takes their gradient."""
        self._batch_id = batch_id
        self._received = layers
        self._backprop = backprop

    def verify_inputs(self, docs: List[Doc]) -> None:
        if self._batch_id is None:
            raise ValueError("ElmoListener: no layers were received from the upstream 'elmo' component")
        batch_id = listener_batch_id(docs)
        if batch_id != self._batch_id:
            raise ValueError(
                f"ElmoListener: asked for batch {batch_id} but received layers for batch {self._batch_id}; "
                "the listening component must be updated on the same examples as the 'elmo' component"
            )

    def backprop_and_clear(self, d_layers: List[Floats3d]) -> List[Doc]:
        backprop = self._backprop
        self.clear()
        return backprop(d_layers) if backprop is not None else []

    def clear(self) -> None:
        """Forget what was received (it holds the whole batch's layers)."""
        self._batch_id = None
        self._received = None
        self._backprop = None


@registry.architectures(LISTENER_ARCH)
def ElmoListener(
    width: int,
    upstream: str = "*",
    n_layers: int = 3,
    layer_dropout: float = 0.0,
    layer_norm: bool = False,
    dropout: float = 0.0,
) -> Model[List[Doc], List[Floats2d]]:
    """The task's ELMo vectors, ``[n_tokens, width]`` per Doc.

    width: the biLM's layer width, ``2 * projection_dim`` (256 for the published ``small``, 1024 for
        ``original``).
    upstream: the ``elmo`` component's name, or "*" for any.
    n_layers: the biLM's output layers, ``n_layers + 1`` of its LSTM (3 for every published model).
    layer_dropout, layer_norm, dropout: see :func:`~spacy_elmo.layers.scalar_mix.ScalarMix`.
    """
    mix = ScalarMix(n_layers, width, layer_dropout=layer_dropout, layer_norm=layer_norm, dropout=dropout)
    return ElmoListenerModel(upstream, mix, width)


def _init(model: ElmoListenerModel, X=None, Y=None) -> None:
    model.layers[0].initialize()


def _forward(model: ElmoListenerModel, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    mix = model.layers[0]
    if is_train and model._batch_id is not None:
        model.verify_inputs(docs)
        received = model._received() if callable(model._received) else model._received
        outputs, backprop_mix = mix(received, is_train=True)

        def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
            return model.backprop_and_clear(backprop_mix(d_outputs))

        return outputs, backprop
    layers = [_doc_layers(model, doc, strict=is_train) for doc in docs]
    outputs, backprop_mix = mix(layers, is_train=is_train)

    def backprop_mix_only(d_outputs: List[Floats2d]) -> List[Doc]:
        backprop_mix(d_outputs)
        return []

    return outputs, backprop_mix_only


def _doc_layers(model: ElmoListenerModel, doc: Doc, strict: bool) -> Floats3d:
    data = doc._.get(DATA_ATTR) if doc.has_extension(DATA_ATTR) else None
    if data is not None:
        return model.ops.asarray3f(data.layers)
    if strict:
        raise ValueError(
            "ElmoListener: the Docs carry no ELMo layers and none were received: when the 'elmo' component "
            "is in [training] frozen_components, also list it in [training] annotating_components"
        )
    # Shape inference at initialize runs the model on Docs no upstream component has seen.
    mix = model.layers[0]
    return model.ops.alloc3f(mix.get_dim("nL"), len(doc), mix.get_dim("nI"))


# -- replacing listeners with a standalone copy of the biLM (``nlp.replace_listeners``) ----------------
@registry.architectures("spacy-elmo.StandaloneElmo.v1")
def StandaloneElmo(
    bilm: Model[List[Doc], List[Floats3d]],
    width: int,
    n_layers: int = 3,
    layer_dropout: float = 0.0,
    layer_norm: bool = False,
    dropout: float = 0.0,
) -> Model[List[Doc], List[Floats2d]]:
    """A biLM of the component's own chained with its mix: what a replaced listener becomes."""
    mix = ScalarMix(n_layers, width, layer_dropout=layer_dropout, layer_norm=layer_norm, dropout=dropout)
    return _standalone(bilm, mix)


def _standalone(bilm: Model, mix: Model) -> Model:
    model: Model = chain(bilm, mix)
    model.set_dim("nO", mix.get_dim("nO"))
    return model


def replace_listener(bilm_copy: Model, listener: Model, upstream: Any) -> Model:
    """``replace_listener`` attr of the biLM layer: the copy of the biLM chained with the listener's mix
    (which keeps its learned weights)."""
    if not bilm_copy.shims:
        raise ValueError("replace_listeners: the 'elmo' component has no biLM yet: initialize or load the pipeline first")
    return _standalone(bilm_copy, listener.layers[0])


def replacement_config(options: Dict[str, Any]) -> Callable[[Dict[str, Any], Dict[str, Any]], Dict[str, Any]]:
    """``replace_listener_cfg`` attr of a biLM layer with these ``options``: turns the listener's config
    into one that rebuilds the biLM (with its shapes) and the listener's mix."""

    def replace(bilm_cfg: Dict[str, Any], tok2vec_cfg: Dict[str, Any]) -> Dict[str, Any]:
        listener_cfg = _find_listener_cfg(tok2vec_cfg)
        mix_args = {k: v for k, v in listener_cfg.items() if k not in ("@architectures", "upstream")}
        return {
            "@architectures": "spacy-elmo.StandaloneElmo.v1",
            "bilm": {**bilm_cfg, "options": options},
            **mix_args,
        }

    return replace


def _find_listener_cfg(cfg: Dict[str, Any]) -> Dict[str, Any]:
    if cfg.get("@architectures") == LISTENER_ARCH:
        return cfg
    found = [v for v in cfg.values() if isinstance(v, dict) and v.get("@architectures") == LISTENER_ARCH]
    if len(found) != 1:
        raise ValueError(
            f"replace_listeners: expected one {LISTENER_ARCH} in the component's model.tok2vec config "
            f"(directly or one level down), found {len(found)}"
        )
    return found[0]
