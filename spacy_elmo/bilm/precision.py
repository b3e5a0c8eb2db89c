"""Numeric modes of the biLM.

* ``"exact"`` (the default): float32 everywhere. While the biLM runs, torch's backend settings that let
  float32 matrix multiplies or convolutions compute in a lower precision
  (``torch.set_float32_matmul_precision("medium")``, ``torch.backends.mkldnn.matmul.fp32_precision``,
  TF32 on CUDA) are forced to IEEE float32 and restored afterwards (:func:`ieee_fp32`): on CPUs with
  Intel AMX those settings make oneDNN compute in bfloat16, so exact mode never depends on them.
* ``"fast"`` (opt-in, inference only): matrix multiplies and convolutions take bfloat16 operands, and
  the gates and hidden states they produce are bfloat16; the LSTM cell state, its clipping and the
  returned layers stay float32. The CPU kernels (:mod:`.cpu_kernels`) cast their operands themselves; the
  plain forwards run under bfloat16 :func:`autocast`. With gradients on (training, fine-tuning) both
  modes are exact, unless an autocast block around the biLM says otherwise (bfloat16 pretraining,
  ``pretrain --precision``).

Select a mode for a block of code with ``with precision("fast"): ...`` (a context variable: other
threads keep theirs), or through :class:`~spacy_elmo.bilm.embedder.Embedder`'s ``precision``. The drift
of fast mode from exact is bounded in ``tests/test_speed_modes.py`` and measured by
``benchmarks/bench_bilm.py``.
"""
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import ContextManager, Iterator, List, Tuple

import torch

MODES = ("exact", "fast")
FAST_DTYPE = torch.bfloat16
_MODE: ContextVar[str] = ContextVar("spacy_elmo_precision", default="exact")
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


def operand_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype of matrix-multiply operands in the current mode, for a computation on ``tensors``:
    bfloat16 in fast mode unless autograd records it, else float32."""
    return FAST_DTYPE if _MODE.get() == "fast" and not needs_grad(*tensors) else torch.float32


def autocast(x: torch.Tensor, *tensors: torch.Tensor) -> ContextManager[object]:
    """For the plain forwards: bfloat16 autocast on ``x``'s device where :func:`operand_dtype` of ``x`` and
    ``tensors`` is bfloat16; where autograd records, a block that changes nothing, so that an autocast
    around it (bfloat16 pretraining) stays in force; else (exact inference) float32, whatever autocast
    is around it."""
    if operand_dtype(x, *tensors) == FAST_DTYPE:
        return torch.autocast(x.device.type, dtype=FAST_DTYPE)
    if needs_grad(x, *tensors):
        return nullcontext()
    return torch.autocast(x.device.type, enabled=False)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively: a CUDA GPU that supports bfloat16, or a
    CPU on which oneDNN has bfloat16 products (AVX-512 or AMX). Elsewhere bfloat16 products are emulated,
    many times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
