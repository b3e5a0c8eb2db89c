"""The task's mix of the biLM layers (eq. 1 of the ELMo paper): ``gamma * sum_j softmax(s)_j * h_j``."""
from typing import Any, Callable, List, Tuple

import numpy
from thinc.api import Model
from thinc.types import Floats2d, Floats3d

LAYER_NORM_EPS = 1e-12


def ScalarMix(
    n_layers: int,
    width: int,
    *,
    layer_dropout: float = 0.0,
    layer_norm: bool = False,
    dropout: float = 0.0,
) -> Model[List[Floats3d], List[Floats2d]]:
    """One ``[n_tokens, width]`` array per input ``[n_layers, n_tokens, width]`` array.

    The weights ``s`` start at zero (a uniform mix) and ``gamma`` at 1. In training, ``layer_dropout``
    drops each layer from the softmax with that probability (at least one layer is always kept) and
    ``dropout`` is applied to the output. ``layer_norm`` normalises every token vector of every layer
    (zero mean, unit variance over the width, no learned scale) before mixing, so a Doc's output never
    depends on its batch-mates. The two dropout rates are the layer's own: spaCy's training ``dropout``
    does not override them.
    """
    for name, rate in (("layer_dropout", layer_dropout), ("dropout", dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"ScalarMix: {name} must be in [0, 1), got {rate}")
    if n_layers < 1 or width < 1:
        raise ValueError(f"ScalarMix: n_layers and width must be positive, got {n_layers} and {width}")
    return Model(
        "elmo_scalar_mix",
        forward,
        init=init,
        dims={"nL": n_layers, "nI": width, "nO": width},
        params={"s": None, "gamma": None},
        attrs={"layer_dropout": layer_dropout, "layer_norm": layer_norm, "output_dropout": dropout},
    )


def init(model: Model, X=None, Y=None) -> None:
    model.set_param("s", model.ops.alloc1f(model.get_dim("nL")))
    gamma = model.ops.alloc1f(1)
    gamma[0] = 1.0
    model.set_param("gamma", gamma)


def layer_weights(model: Model) -> Tuple[List[float], float]:
    """The learned mix: ``(softmax(s), gamma)`` as plain floats."""
    s = model.ops.to_numpy(model.get_param("s")).astype(numpy.float64)
    e = numpy.exp(s - s.max())
    w = e / e.sum()
    return [float(v) for v in w], float(model.ops.to_numpy(model.get_param("gamma"))[0])


def _check(model: Model, X: List[Floats3d]) -> None:
    n_layers, width = model.get_dim("nL"), model.get_dim("nI")
    for x in X:
        if x.ndim != 3 or x.shape[0] != n_layers or x.shape[2] != width:
            raise ValueError(
                f"ELMo mix: expected layers of shape [{n_layers}, n_tokens, {width}], got {list(x.shape)}; "
                f"set the listener's n_layers / width to the biLM's (width = 2 * projection_dim)"
            )


def forward(model: Model, X: List[Floats3d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    _check(model, X)
    ops, xp = model.ops, model.ops.xp
    n_layers, width = model.get_dim("nL"), model.get_dim("nO")
    lengths = [x.shape[1] for x in X]
    H: Any = xp.concatenate(X, axis=1) if X else ops.alloc3f(n_layers, 0, width)  # numpy or cupy
    if model.attrs["layer_norm"]:
        mean = H.mean(axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(H.var(axis=-1, keepdims=True) + LAYER_NORM_EPS)
        H = (H - mean) * inv_std
    s = model.get_param("s")
    gamma = model.get_param("gamma")
    keep = _layer_mask(model, n_layers) if is_train else None
    logits = s if keep is None else xp.where(keep, s, -xp.inf)
    e = xp.exp(logits - logits.max())
    w = (e / e.sum()).astype("float32")
    M = xp.tensordot(w, H, axes=1).astype("float32")  # [N, W]
    rate = model.attrs["output_dropout"]
    drop = ops.get_dropout_mask(M.shape, rate) if is_train and rate > 0 else None
    Y = gamma[0] * M if drop is None else gamma[0] * M * drop

    def backprop(dY_list: List[Floats2d]) -> List[Floats3d]:
        dY: Any = xp.concatenate(dY_list, axis=0) if dY_list else ops.alloc2f(0, width)
        if drop is not None:
            dY = dY * drop
        model.inc_grad("gamma", xp.asarray([(dY * M).sum()], dtype="float32"))
        dM = gamma[0] * dY
        dw = xp.tensordot(H, dM, axes=([1, 2], [0, 1]))  # [L]
        model.inc_grad("s", (w * (dw - (w * dw).sum())).astype("float32"))
        dH = w[:, None, None] * dM[None]
        if model.attrs["layer_norm"]:
            dH = inv_std * (dH - dH.mean(axis=-1, keepdims=True) - H * (dH * H).mean(axis=-1, keepdims=True))
        return _split(ops, dH.astype("float32"), lengths, axis=1)

    return _split(ops, Y, lengths, axis=0), backprop


def _layer_mask(model: Model, n_layers: int):
    """Which layers take part in this training step (None: all)."""
    rate = model.attrs["layer_dropout"]
    if rate <= 0:
        return None
    xp = model.ops.xp
    keep = xp.random.uniform(0.0, 1.0, n_layers) >= rate
    if not keep.any():
        keep[xp.random.randint(n_layers)] = True
    return keep


def _split(ops, array, lengths: List[int], axis: int) -> list:
    out, start = [], 0
    for n in lengths:
        part = array[start : start + n] if axis == 0 else array[:, start : start + n]
        out.append(ops.as_contig(part))
        start += n
    return out
