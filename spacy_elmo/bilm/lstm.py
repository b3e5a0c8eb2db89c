"""Both directions of the biLM's LSTM stack, with projection, cell clip, projection clip and skips.

Weights keep TensorFlow's layout (``x @ W``, gate order i, j, f, o, forget bias +1 added at run time)
so that the published files map onto them one to one. The backward direction reads each sequence
reversed within its own length, so both directions see left-aligned sequences sorted by length, and
steps only compute the sequences still running.

With autograd on, both directions run together, one batched multiply per step. Without (inference)
each direction runs its own loop, the two at once on CPU (:func:`_both_directions`), on oneDNN products
(see :mod:`.precision`). The first layer computes its input products once per distinct token of every
``TIME_CHUNK`` steps; later layers compute each step's gates in one product of ``[x_t; h]`` with the
stacked weights and a sigmoid post-op. The gates are updated in place: fewer, larger operations.
"""
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .forks import on_fork
from .options import LSTMOptions
from .precision import WeightCache, ieee_fp32, inference_dtype, linear, linear_add, needs_grad, pack

TIME_CHUNK = 4  # steps whose input products are computed together at inference: their gates stay in cache


class BiLSTMLayer(nn.Module):
    """One layer, both directions: index 0 of every parameter is forward, 1 is backward."""

    def __init__(self, input_dim: int, options: LSTMOptions) -> None:
        super().__init__()
        cells, proj = options.dim, options.projection_dim
        self.weight_ih = nn.Parameter(torch.empty(2, input_dim, 4 * cells))
        self.weight_hh = nn.Parameter(torch.empty(2, proj, 4 * cells))
        self.bias = nn.Parameter(torch.zeros(2, 4 * cells))
        self.weight_proj = nn.Parameter(torch.empty(2, cells, proj))
        forget = torch.zeros(4 * cells)
        forget[2 * cells : 3 * cells] = 1.0
        self.register_buffer("forget_bias", forget, persistent=False)
        self._weights = WeightCache()
        self.cell_clip = options.cell_clip
        self.proj_clip = options.proj_clip
        for weight in (self.weight_ih, self.weight_hh, self.weight_proj):
            nn.init.uniform_(weight, -(cells**-0.5), cells**-0.5)

    def forward(self, x: torch.Tensor, batch_sizes: Sequence[int], types: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``[2, B, T, D]`` left-aligned, rows sorted by length; returns ``[2, B, T, P]``.

        Without autograd (inference) the loop runs in place on preallocated buffers, in the mode of
        :mod:`.precision`; with autograd it is the plain differentiable loop, always exact. ``types``
        (``[2, B, T]`` ids, equal where the rows of ``x`` are equal) lets inference compute the input
        products once per distinct row of each chunk of steps.
        """
        if needs_grad(x, *self.parameters()):
            return self._forward_autograd(x, batch_sizes)
        return self._forward_inference(x, batch_sizes, inference_dtype(), types)

    def _forward_autograd(self, x: torch.Tensor, batch_sizes: Sequence[int]) -> torch.Tensor:
        _, batch, steps, dim = x.shape
        cells = self.weight_hh.shape[-1] // 4
        bias = (self.bias + self.forget_bias).unsqueeze(1)
        # the input half of every gate for all steps at once, time-major; only h @ W_hh stays in the loop.
        # unbind splits the steps once, so backward stacks one gradient (slicing every step would write
        # each step's gradient into a zero-filled copy of the whole product: quadratic in length)
        time_major = x.transpose(1, 2).reshape(2, steps * batch, dim)
        gates_x = torch.baddbmm(bias, time_major, self.weight_ih).view(2, steps, batch, -1)
        h = x.new_zeros(2, batch, self.weight_hh.shape[1])
        c = x.new_zeros(2, batch, cells)
        outputs: List[torch.Tensor] = []
        for step_x, active in zip(gates_x.unbind(1), batch_sizes):
            h, c = h[:, :active], c[:, :active]
            gates = torch.baddbmm(step_x[:, :active], h, self.weight_hh)
            i, j, f, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(j)
            if self.cell_clip:
                c = c.clamp(-self.cell_clip, self.cell_clip)
            h = torch.bmm(torch.sigmoid(o) * torch.tanh(c), self.weight_proj)
            if self.proj_clip:
                h = h.clamp(-self.proj_clip, self.proj_clip)
            outputs.append(F.pad(h, (0, 0, 0, batch - active)) if active < batch else h)
        return torch.stack(outputs, dim=2)

    def _forward_inference(
        self, x: torch.Tensor, batch_sizes: Sequence[int], dtype: torch.dtype, types: Optional[torch.Tensor]
    ) -> torch.Tensor:
        _, batch, steps, _ = x.shape
        cells, proj = self.weight_proj.shape[1:]
        # without types, each step's gates come from one product of [x_t; h] with [W_ih; W_hh] and a sigmoid
        # post-op (on CPU faster than separate input and recurrent products: benchmarks/bench_breakdown.py);
        # with types, from input products per chunk of steps and distinct row, plus the recurrent product
        stacked = types is None
        w_in, w_hh, w_proj, bias = self._inference_weights(dtype, stacked)
        xt = x.transpose(1, 2).to(dtype)  # [2, T, B, D] time-major: a step's rows are contiguous
        out = x.new_empty(2, steps, batch, proj)
        out[:, :, batch_sizes[-1] :].zero_()  # rows that stop early: the steps they do not run stay zero

        def input_gates(d: int) -> Iterator[torch.Tensor]:
            """Each step's ``x_t W_ih + b`` for its active rows, ``TIME_CHUNK`` steps per product."""
            types_t = types[d].t()  # [T, B]
            for t0 in range(0, steps, TIME_CHUNK):
                t1 = min(t0 + TIME_CHUNK, steps)
                # only the rows still running at each step, packed: no product for padding
                packed, rows = _distinct(torch.cat([xt[d, t, : batch_sizes[t]] for t in range(t0, t1)]),
                                         torch.cat([types_t[t, : batch_sizes[t]] for t in range(t0, t1)]))
                gates_x = linear(packed, w_in[d], bias[d])  # one product per distinct row, gathered back
                offset = 0
                for t in range(t0, t1):
                    yield gates_x.index_select(0, rows[offset : offset + batch_sizes[t]])
                    offset += batch_sizes[t]

        def direction(d: int) -> None:
            h = x.new_zeros(batch, proj, dtype=dtype)
            c = x.new_zeros(batch, cells)  # the cell state stays float32 in every mode
            hidden = x.new_empty(batch, cells, dtype=dtype)
            inputs = None if stacked else input_gates(d)
            for t in range(steps):
                active = batch_sizes[t]
                if inputs is None:
                    sig = linear(torch.cat([xt[d, t, :active], h[:active]], dim=1), w_in[d], bias[d], sigmoid=True)
                else:
                    sig = linear_add(h[:active], w_hh[d], next(inputs)).sigmoid_()
                c = c[:active]
                cell_step(sig, c, hidden[:active], self.cell_clip)
                h = linear(hidden[:active], w_proj[d])
                if self.proj_clip:
                    h.clamp_(-self.proj_clip, self.proj_clip)
                out[d, t, :active] = h

        _both_directions(direction, x.device)
        return out.transpose(1, 2)

    def _inference_weights(self, dtype: torch.dtype, stacked: bool):
        """Per direction, packed ``[out, in]`` copies in ``dtype``: the input weights (stacked on top of the
        recurrent ones when ``stacked``), the recurrent weights (None when stacked), the projection, and the
        bias with the forget bias added. The j gate's columns and the projection are doubled (exact: a
        power of two)."""
        params = [self.weight_ih, self.weight_hh, self.weight_proj, self.bias]
        cells = self.weight_proj.shape[1]
        double_j = torch.ones(4 * cells, device=self.bias.device)
        double_j[cells : 2 * cells] = 2.0

        def build():
            def per_direction(w: torch.Tensor, scale) -> List[torch.Tensor]:
                return [pack((w[d] * scale).t().to(dtype)) for d in range(2)]

            bias = [((self.bias[d] + self.forget_bias) * double_j).to(dtype) for d in range(2)]
            proj = per_direction(self.weight_proj, 2.0)
            if stacked:
                return per_direction(torch.cat([self.weight_ih, self.weight_hh], dim=1), double_j), None, proj, bias
            return per_direction(self.weight_ih, double_j), per_direction(self.weight_hh, double_j), proj, bias

        return self._weights.get((dtype, stacked), params, build)


class BiLSTM(nn.Module):
    """``n_layers`` of :class:`BiLSTMLayer`; layers after the first add their input (skip connection)."""

    def __init__(self, options: LSTMOptions) -> None:
        super().__init__()
        self.options = options
        self.layers = nn.ModuleList(BiLSTMLayer(options.projection_dim, options) for _ in range(options.n_layers))
        self.dropout = 0.0

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, types: Optional[torch.Tensor] = None
    ) -> List[torch.Tensor]:
        """``tokens``: ``[B, T, P]``; returns one ``[B, T, 2P]`` tensor per layer, zero past each length.

        ``types``: optional ``[B, T]`` ids, equal where tokens are equal (the first layer's input products
        are then computed once per distinct token and chunk of steps at inference).
        """
        batch, steps, _ = tokens.shape
        lengths_cpu = lengths.cpu()
        order = torch.argsort(lengths_cpu, descending=True, stable=True)
        sorted_lengths = lengths_cpu[order]
        batch_sizes = [int(n) for n in (sorted_lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)]
        order_dev = order.to(tokens.device)
        x = tokens.index_select(0, order_dev)
        reverse = _reverse_index(sorted_lengths, steps).to(tokens.device)
        x = torch.stack([x, _gather_time(x, reverse)])
        if types is not None:
            types = types.to(tokens.device).index_select(0, order_dev)
            types = torch.stack([types, types.gather(1, reverse)])
        mask = (torch.arange(steps).unsqueeze(0) < sorted_lengths.unsqueeze(1)).to(tokens.device)
        mask = mask.unsqueeze(-1).to(tokens.dtype)
        unsort = torch.argsort(order_dev)
        results: List[torch.Tensor] = []
        with ieee_fp32():
            for index, layer in enumerate(self.layers):
                inputs = F.dropout(x, self.dropout, self.training) if self.dropout else x
                out = layer(inputs, batch_sizes, types if index == 0 else None)
                if index > 0 and self.options.use_skip_connections:
                    out = out + x
                x = out
                both = torch.cat([out[0], _gather_time(out[1], reverse)], dim=-1) * mask
                results.append(both.index_select(0, unsort))
        return results


_POOL: List[ThreadPoolExecutor] = []  # the direction threads, made on first use; a forked child makes its own
on_fork(_POOL.clear)


def _both_directions(run: Callable[[int], None], device: torch.device) -> None:
    """``run(0)`` and ``run(1)``: on CPU with n >= 2 torch threads, at once in two threads with n // 2 each.

    The steps of one direction are small operations: two independent streams use the cores better than
    both directions in turn, each operation split over all threads (small: 1.3x exact, 1.4x fast with 2
    threads here; original, whose weights outgrow the cache: about even). Torch's thread count is
    process-wide, so it reads n // 2 while the two run, then n again.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2:
        run(0)
        run(1)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2, thread_name_prefix="spacy-elmo-lstm"))
    pool = _POOL[0]

    def job(direction: int) -> None:
        torch.set_num_threads(threads // 2)  # this thread's OpenMP team, and the shared count
        with torch.no_grad():  # grad mode is per thread; this path runs only without autograd
            run(direction)

    try:
        futures = [pool.submit(job, 0), pool.submit(job, 1)]
        wait(futures)
        for future in futures:
            future.result()
    finally:
        torch.set_num_threads(threads)


def cell_step(sig: torch.Tensor, c: torch.Tensor, hidden: torch.Tensor, cell_clip: float) -> None:
    """One inference step's elementwise work, in place: ``c = clip(f c + i tanh(j))`` and
    ``hidden = o tanh(c) / 2``, from ``sig``, the sigmoids of the gates i, j, f, o.

    The j gate's pre-activation is doubled in the weights, so ``tanh(j) = 2 sig_j - 1`` (within 2e-7;
    torch's CPU tanh costs 3x a sigmoid); ``o tanh(c) = 2 (sigmoid(2c) - 1/2) o``, its 2 folded into the
    projection's weights.
    """
    i, j, f, o = sig.split(c.shape[1], dim=1)
    c.mul_(f).addcmul_(i, j, value=2.0).sub_(i)
    if cell_clip:
        c.clamp_(-cell_clip, cell_clip)
    torch.mul(c, 2.0, out=hidden).sigmoid_().sub_(0.5).mul_(o)


def _distinct(rows: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``rows`` with distinct ``ids`` (first occurrences), and each row's index among them."""
    distinct, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(distinct),), len(ids), dtype=ids.dtype, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), "amin")
    return rows.index_select(0, first), inverse


def _reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, T]`` time index that reverses each row within its length and leaves padding in place."""
    positions = torch.arange(steps).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
