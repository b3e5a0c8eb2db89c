"""Numeric modes of the biLM and the matrix multiply they run on.

* ``"exact"`` (the default): float32 everywhere. While an exact computation runs, torch's backend
  settings that let float32 matrix multiplies or convolutions compute in a lower precision
  (``torch.set_float32_matmul_precision("medium")``, ``torch.backends.mkldnn.matmul.fp32_precision``,
  TF32 on CUDA) are forced to IEEE float32 and restored afterwards: on CPUs with Intel AMX those
  settings make oneDNN compute in bfloat16, so exact mode never depends on them.
* ``"fast"`` (opt-in, inference only): matrix multiplies take bfloat16 operands; LSTM states, gates,
  clipping, maxima and outputs stay float32. Its drift from exact mode is measured in
  ``tests/test_speed_modes.py`` and ``benchmarks/bench_bilm.py``. With gradients on (training,
  fine-tuning) the exact path runs whatever the mode.

Select a mode for a block of code with ``with precision("fast"): ...`` (a context variable: other
threads keep theirs), or through :class:`~spacy_elmo.bilm.embedder.Embedder`'s ``precision``.

On CPU, inference matrix multiplies go to oneDNN (``torch.ops.mkldnn._linear_pointwise``), which runs
float32 about twice as fast as the default MKL route on the AVX-512 machines we measured, in IEEE
float32 under exact mode.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F

MODES = ("exact", "fast")
FAST_DTYPE = torch.bfloat16
_MODE: ContextVar[str] = ContextVar("spacy_elmo_precision", default="exact")
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_PACK = _ONEDNN and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
# (backend, op) pairs whose float32 precision setting can lower the precision of our products
_FP32_SETTINGS = (("mkldnn", "matmul"), ("mkldnn", "conv"), ("cuda", "matmul"), ("cudnn", "conv"))


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"Unknown biLM precision {mode!r}: expected one of {MODES}")
    return mode


def current_mode() -> str:
    """The mode of the innermost :func:`precision` block (``"exact"`` outside any)."""
    return _MODE.get()


@contextmanager
def precision(mode: str) -> Iterator[None]:
    """Run the biLM in ``mode`` ("exact" or "fast") inside the block."""
    token = _MODE.set(check_mode(mode))
    try:
        yield
    finally:
        _MODE.reset(token)


@contextmanager
def ieee_fp32() -> Iterator[None]:
    """Force IEEE float32 products for the block, whatever the global torch settings, and restore them."""
    saved: List[Tuple[str, str, str]] = []
    for backend, op in _FP32_SETTINGS:
        try:
            value = torch._C._get_fp32_precision_getter(backend, op)
            if value != "ieee":
                torch._C._set_fp32_precision_setter(backend, op, "ieee")
                saved.append((backend, op, value))
        except (AttributeError, RuntimeError):  # an older torch without the setting
            continue
    try:
        yield
    finally:
        for backend, op, value in reversed(saved):
            torch._C._set_fp32_precision_setter(backend, op, value)


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd will record an operation on ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def inference_dtype() -> torch.dtype:
    """Operand dtype of inference matrix multiplies in the current mode."""
    return FAST_DTYPE if _MODE.get() == "fast" else torch.float32


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, sigmoid: bool = False
) -> torch.Tensor:
    """``x @ weight.T (+ bias)``, then the sigmoid if asked, for inference: oneDNN on CPU (the sigmoid
    as a post-op, on the output while it is in cache), ``F.linear`` elsewhere.

    ``weight`` is ``[out, in]``, from :func:`pack`; ``x``, ``weight`` and ``bias`` share a dtype.
    """
    if _ONEDNN and x.device.type == "cpu":
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "sigmoid" if sigmoid else "none", [], "")
    out = F.linear(x, weight, bias)
    return out.sigmoid_() if sigmoid else out


def pack(weight: torch.Tensor, rows: int = 128) -> torch.Tensor:
    """``weight`` (``[out, in]``) for :func:`linear` and :func:`linear_add`: on CPU, in oneDNN's blocked
    layout, reordered once instead of at every product (5-15% faster, the same results; ``rows`` is a
    hint of the row count of ``x``); elsewhere unchanged."""
    if _PACK and weight.device.type == "cpu":
        return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)
    return weight.contiguous()


def linear_add(x: torch.Tensor, weight: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + other`` for inference (``other`` has the output's shape and dtype)."""
    if _ONEDNN and x.device.type == "cpu":
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, None, "add")
    return torch.addmm(other, x, weight.t())


class WeightCache:
    """Inference copies of a module's weights (transposed, cast, fused), rebuilt when a weight changes.

    A parameter's ``_version`` counts its in-place updates (optimizer steps, ``load_state_dict``), so
    stale copies are never used.
    """

    def __init__(self) -> None:
        self._store: Dict[object, Tuple[Tuple, object]] = {}

    # derived data (and oneDNN-packed tensors cannot be copied): copies and pickles start empty
    def __deepcopy__(self, memo: dict) -> "WeightCache":
        return WeightCache()

    def __getstate__(self) -> dict:
        return {"_store": {}}

    def get(self, key: object, params: List[torch.Tensor], build: Callable[[], object]) -> object:
        stamp = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        hit = self._store.get(key)
        if hit is None or hit[0] != stamp:
            with torch.no_grad():
                hit = self._store[key] = (stamp, build())
        return hit[1]
