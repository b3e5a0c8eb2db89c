"""CPU inference kernels: the maths of the plain forwards in ``token_encoder.py`` and ``lstm.py``,
arranged for speed on CPU.

:func:`applies` is the one place that chooses them: inference (autograd records nothing) on a CPU tensor,
with torch's oneDNN ops present (for fast mode, with oneDNN's bfloat16 products), unless switched off
with :func:`disabled`. Everywhere else (training,
CUDA) the plain forward runs. What the kernels change, and why each change keeps the maths:

* Products run on oneDNN (``torch.ops.mkldnn._linear_pointwise``), which on AVX-512 CPUs runs float32
  products much faster than torch's default CPU route, and can fuse a sigmoid or an addition as a
  post-op while the output is still in cache. Under exact mode they are IEEE float32
  (:func:`.precision.ieee_fp32`). Weights are reordered once into oneDNN's blocked layout
  (:func:`pack`) instead of at every product, and kept per module in a :class:`WeightCache`.
* Character CNN: every filter is zero-padded to the widest width, so all widths are one product over the
  same windows. Windows that start past a token's end-of-word mark see only padding and all give the
  value of the first such window, so only ``longest token + 1`` window starts are computed (tokens
  sorted by length, chunks of :data:`CHUNK_WINDOWS` windows so that the products stay in cache): the
  maxima are exactly the published ones.
* LSTM: each step's gates in one product of ``[x_t; h]`` with the stacked ``[W_ih; W_hh]`` and the
  sigmoid as its post-op (one product over the longer inner dimension beats two). tanh costs about three
  sigmoids on CPU, so ``tanh(j) = 2 sigmoid(2j) - 1`` and ``o tanh(c) = 2 o (sigmoid(2c) - 1/2)``, with
  the factors 2 folded into the j gate's and the projection's weights (powers of two: exact). Gates and
  states are updated in place, only the rows still running are computed, and the two directions run at
  once in two threads (:func:`_both_directions`).
* Shapes: oneDNN (and torch's ideep layer over it) keeps a compiled primitive, about a megabyte, for
  every distinct product shape it meets, up to a thousand of each. Row counts follow the text (tokens
  per chunk, sequences still running), so a long stream of varied batches would fill both caches and
  hold gigabytes. Every product's row count is therefore rounded up to one of a few sizes
  (:func:`rows_bucket`, at most 25% more rows) with zero or finished rows, whose results are dropped:
  products compute each row from that row alone, so the kept rows are those of the unpadded product.
"""
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from .forks import on_fork
from .precision import needs_grad, operand_dtype

if TYPE_CHECKING:
    from .lstm import BiLSTMLayer
    from .token_encoder import CharacterEncoder, Highway

AVAILABLE = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
)
# oneDNN's bfloat16 products need AVX-512 (or AVX-NE-CONVERT); elsewhere fast mode runs the plain forwards
BFLOAT16 = AVAILABLE and torch.ops.mkldnn._is_mkldnn_bf16_supported()
CHUNK_WINDOWS = 2048  # tokens x window starts per product of the character CNN: keeps it in cache
TOKEN_BLOCK = 512  # tokens per product of the highway layers and the projection
_ENABLED: ContextVar[bool] = ContextVar("spacy_elmo_cpu_kernels", default=True)


def applies(x: torch.Tensor, module: nn.Module) -> bool:
    """Whether ``module`` runs on these kernels for input ``x``."""
    if not (AVAILABLE and _ENABLED.get() and x.device.type == "cpu") or needs_grad(x, *module.parameters()):
        return False
    return BFLOAT16 or operand_dtype() == torch.float32


@contextmanager
def disabled() -> Iterator[None]:
    """Run the plain forwards inside the block, as CUDA does (a context variable: other threads keep theirs)."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, sigmoid: bool = False
) -> torch.Tensor:
    """``x @ weight.T (+ bias)``, then the sigmoid as a post-op if asked. ``weight`` comes from
    :func:`pack`; ``x``, ``weight`` and ``bias`` share a dtype."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "sigmoid" if sigmoid else "none", [], "")


def rows_bucket(n: int) -> int:
    """The row count a product of ``n`` rows runs with: ``n`` up to 8, above that the next number of the
    form ``m * 2**k`` with ``m`` in 4..7 (10, 12, 14, 16, 20, 24, 28, 32, 40, ...): about four sizes per
    doubling, so that a stream of any lengths meets few distinct shapes (see the module's notes)."""
    if n <= 8:
        return max(n, 0)
    step = 1 << (n.bit_length() - 3)  # n has a leading 1 and two more bits above this step
    return -(-n // step) * step


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows`` (``x`` itself when it has them)."""
    return x if x.shape[0] >= rows else F.pad(x, (0, 0, 0, rows - x.shape[0]))


def pack(weight: torch.Tensor, rows: int = 128) -> torch.Tensor:
    """``weight`` (``[out, in]``) in oneDNN's blocked layout for :func:`linear` (``rows``: a hint of the
    row count of ``x``)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)


class WeightCache:
    """Kernel copies of a module's weights (transposed, cast, packed), rebuilt when a weight changes.

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

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: object, params: Sequence[torch.Tensor], build: Callable[[], object]) -> object:
        stamp = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        hit = self._store.get(key)
        if hit is None or hit[0] != stamp:
            with torch.no_grad():
                hit = self._store[key] = (stamp, build())
        return hit[1]


# -- the character CNN ------------------------------------------------------------------------------


def encode_tokens(encoder: "CharacterEncoder", char_ids: torch.Tensor) -> torch.Tensor:
    """What ``encoder``'s plain forward computes: ``[n_tokens, 50]`` ids to ``[n_tokens, P]`` vectors."""
    n_tokens, n_chars = char_ids.shape
    if n_tokens == 0:
        return char_ids.new_zeros(0, encoder.projection.out_features, dtype=torch.float32)
    # characters before the padding: a published token is contiguous characters, then padding (rows of
    # id 0, padded token positions, give identical windows, so count as length 0)
    lengths = ((char_ids != encoder.padding_id) & (char_ids != 0)).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    starts = torch.minimum(lengths[order] + 1, lengths.new_tensor(n_chars)).tolist()
    pieces: List[torch.Tensor] = []
    begin = 0
    while begin < n_tokens:
        end = begin + 1
        while end < n_tokens and (end + 1 - begin) * starts[end] <= CHUNK_WINDOWS:
            end += 1
        pieces.append(_convolve_sorted(encoder, char_ids[order[begin:end]], starts[end - 1]))
        begin = end
    filtered = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    dtype = operand_dtype()
    blocks = []
    for start in range(0, n_tokens, TOKEN_BLOCK):
        x = filtered[start : start + TOKEN_BLOCK]
        rows = x.shape[0]
        x = pad_rows(x, rows_bucket(rows))
        for highway in cast(Sequence["Highway"], encoder.highways):
            x = highway.combine(_linear_layer(encoder, highway.proj, x, dtype), x)
        blocks.append(_linear_layer(encoder, encoder.projection, x, dtype)[:rows])
    encoded = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
    return encoded.index_select(0, torch.argsort(order))


def _convolve_sorted(encoder: "CharacterEncoder", char_ids: torch.Tensor, n_starts: int) -> torch.Tensor:
    """``[n, n_filters]``: the activated maxima of the convolutions, for tokens whose windows starting at
    ``n_starts`` or later repeat earlier ones."""
    n_tokens, n_chars = char_ids.shape
    convs = _convs(encoder)
    width = max(c.weight.shape[-1] for c in convs)
    ids = char_ids[:, : n_starts + width - 1]
    if ids.shape[1] < n_starts + width - 1:  # zero embedding rows under zero-padded filter weights
        ids = F.pad(ids, (0, n_starts + width - 1 - ids.shape[1]))
    dtype = operand_dtype()
    windows = encoder.embedding(ids).to(dtype).unfold(1, width, 1)  # [n, starts, emb, width]
    rows = n_tokens * n_starts
    flat = windows.new_zeros(rows_bucket(rows), windows.shape[2] * width)
    flat[:rows].view(windows.shape).copy_(windows)
    conv = linear(flat, _filters(encoder, convs, width, dtype))[:rows].view(n_tokens, n_starts, -1)
    if n_starts + width - 1 > n_chars:  # windows running past the 50 characters do not exist
        conv = conv + _invalid_windows(convs, n_starts, n_chars, conv)
    bias = torch.cat([cast(torch.Tensor, c.bias) for c in convs])
    return encoder.activation(conv.amax(dim=1).float() + bias)  # max, then the activation, as published


def _convs(encoder: "CharacterEncoder") -> List[nn.Conv1d]:
    return [cast(nn.Conv1d, conv) for conv in encoder.convs]


def _filters(encoder: "CharacterEncoder", convs: List[nn.Conv1d], width: int, dtype: torch.dtype) -> torch.Tensor:
    """Packed ``[n_filters, emb * width]``: every filter zero-padded on the right to ``width``, the widest."""
    weights = [c.weight for c in convs]

    def build() -> torch.Tensor:
        return pack(torch.cat([F.pad(w, (0, width - w.shape[-1])) for w in weights]).flatten(1).to(dtype))

    return cast(torch.Tensor, encoder.kernel_weights.get(("filters", dtype), weights, build))


def _linear_layer(encoder: "CharacterEncoder", layer: nn.Linear, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    weight = cast(torch.Tensor, encoder.kernel_weights.get(
        (id(layer), dtype), [layer.weight], lambda: pack(layer.weight.to(dtype))))
    if dtype == torch.float32:
        return linear(x, weight, layer.bias)
    return linear(x.to(dtype), weight).float() + layer.bias


def _invalid_windows(convs: List[nn.Conv1d], n_starts: int, n_chars: int, like: torch.Tensor) -> torch.Tensor:
    """``[n_starts, n_filters]``: 0 where a filter's window fits in ``n_chars``, else -inf."""
    starts = torch.arange(n_starts, device=like.device).unsqueeze(1)
    widths = torch.cat([torch.full((c.out_channels,), c.weight.shape[-1]) for c in convs])
    fits = starts + widths.to(like.device).unsqueeze(0) <= n_chars
    return torch.zeros(fits.shape, dtype=like.dtype, device=like.device).masked_fill(~fits, float("-inf"))


# -- the LSTM ---------------------------------------------------------------------------------------


def bilstm_layer(layer: "BiLSTMLayer", x: torch.Tensor, batch_sizes: Sequence[int]) -> torch.Tensor:
    """What ``layer``'s plain forward computes, each direction in its own loop, in place."""
    _, batch, steps, _ = x.shape
    cells, proj = layer.weight_proj.shape[1:]
    dtype = operand_dtype()
    w_gates, w_proj, bias = _lstm_weights(layer, dtype)
    # [2, T, rows, D] time-major (a step's rows are contiguous), zero rows up to the bucket of the batch:
    # each step runs ``rows_bucket(active)`` rows, the running ones then finished or zero ones, whose
    # states are never read into ``out``
    padded = rows_bucket(batch)
    xt = x.new_zeros(2, steps, padded, x.shape[-1], dtype=dtype)
    xt[:, :, :batch] = x.transpose(1, 2)
    out = x.new_empty(2, steps, batch, proj)
    out[:, :, batch_sizes[-1] :].zero_()  # rows that stop early: the steps they do not run stay zero

    def direction(d: int) -> None:
        h = x.new_zeros(padded, proj, dtype=dtype)
        c = x.new_zeros(padded, cells)  # the cell state stays float32 in every mode
        hidden = x.new_empty(padded, cells, dtype=dtype)
        for t in range(steps):
            active = batch_sizes[t]
            rows = rows_bucket(active)
            sig = linear(torch.cat([xt[d, t, :rows], h[:rows]], dim=1), w_gates[d], bias[d], sigmoid=True)
            c = c[:rows]
            cell_step(sig, c, hidden[:rows], layer.cell_clip)
            h = linear(hidden[:rows], w_proj[d])
            if layer.proj_clip:
                h.clamp_(-layer.proj_clip, layer.proj_clip)
            out[d, t, :active] = h[:active]

    _both_directions(direction)
    return out.transpose(1, 2)


LSTMWeights = Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]


def _lstm_weights(layer: "BiLSTMLayer", dtype: torch.dtype) -> LSTMWeights:
    """Per direction, packed ``[out, in]`` copies in ``dtype``: ``[W_ih; W_hh]``, the projection, and the
    bias with the forget bias added; the j gate's columns and the projection doubled for :func:`cell_step`."""
    params = [layer.weight_ih, layer.weight_hh, layer.weight_proj, layer.bias]
    cells = layer.weight_proj.shape[1]

    def build() -> LSTMWeights:
        double_j = torch.ones(4 * cells, device=layer.bias.device)
        double_j[cells : 2 * cells] = 2.0
        stacked = torch.cat([layer.weight_ih, layer.weight_hh], dim=1)
        gates = [pack((stacked[d] * double_j).t().to(dtype)) for d in range(2)]
        proj = [pack((layer.weight_proj[d] * 2.0).t().to(dtype)) for d in range(2)]
        bias = [((layer.bias[d] + layer.forget_bias) * double_j).to(dtype) for d in range(2)]
        return gates, proj, bias

    return cast(LSTMWeights, layer.kernel_weights.get(dtype, params, build))


def cell_step(sig: torch.Tensor, c: torch.Tensor, hidden: torch.Tensor, cell_clip: float) -> None:
    """One step's elementwise work, in place: ``c = clip(f c + i tanh(j))`` and ``hidden = o tanh(c) / 2``,
    from ``sig``, the sigmoids of the gates i, 2j, f, o (``tanh(j) = 2 sigmoid(2j) - 1``; the 2 of
    ``o tanh(c) = 2 o (sigmoid(2c) - 1/2)`` is folded into the projection's weights)."""
    i, j, f, o = sig.split(c.shape[1], dim=1)
    c.mul_(f).addcmul_(i, j, value=2.0).sub_(i)
    if cell_clip:
        c.clamp_(-cell_clip, cell_clip)
    torch.mul(c, 2.0, out=hidden).sigmoid_().sub_(0.5).mul_(o)


_POOL: List[ThreadPoolExecutor] = []  # the direction threads, made on first use; a forked child makes its own
on_fork(_POOL.clear)


def _both_directions(run: Callable[[int], None]) -> None:
    """``run(0)`` and ``run(1)``: with n >= 2 torch threads, at once in two threads with n // 2 each.

    Each step of one direction is a few small operations, too small to split well over many threads:
    two independent streams keep the cores busier. Torch's thread count is process-wide, so it reads
    n // 2 while the two run, then n again.
    """
    threads = torch.get_num_threads()
    if threads < 2:
        run(0)
        run(1)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2, thread_name_prefix="spacy-elmo-lstm"))
    pool = _POOL[0]

    def job(direction: int) -> None:
        torch.set_num_threads(threads // 2)  # this thread's OpenMP team, and the shared count
        with torch.no_grad():  # grad mode is per thread; the kernels run only where autograd records nothing
            run(direction)

    try:
        futures = [pool.submit(job, 0), pool.submit(job, 1)]
        wait(futures)
        for future in futures:
            future.result()
    finally:
        torch.set_num_threads(threads)
