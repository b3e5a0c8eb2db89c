"""Both directions of the biLM's LSTM stack, with projection, cell clip, projection clip and skips.

Weights keep TensorFlow's layout (``x @ W``, gate order i, j, f, o, forget bias +1 added at run time)
so that the published files map onto them one to one. The backward direction reads each sequence
reversed within its own length, so both directions see left-aligned sequences sorted by length, and
steps compute only the sequences still running.

On CUDA the plain step loop launches a dozen small kernels per step, which caps a small batch at a few
thousand tokens/s per row. :func:`cuda_graphs` (off by default) replays the loop as a captured CUDA graph
instead: every row steps at every step (masked past its end, so the shapes are fixed) on padded shapes.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .options import LSTMOptions
from .precision import autocast, ieee_fp32


_GRAPHS: ContextVar[bool] = ContextVar("spacy_elmo_cuda_graphs", default=False)
GRAPH_ROUND = 8  # rows and steps are padded up to a multiple of this, so that a graph serves many batches
GRAPH_TOKENS = 8192  # the largest padded rows x steps captured (static gates: 2 x this x 4C); larger batches
# keep the plain loop, whose launches they amortise
GRAPH_LIMIT = 64  # graphs kept per layer (the oldest goes first)


@contextmanager
def cuda_graphs(enabled: bool = True) -> Iterator[None]:
    """Inside the block, inference on CUDA replays the step loop as captured CUDA graphs (one per padded
    shape, captured at its first use); elsewhere, and where gradients are recorded, the fixed-shape loop runs
    as it is. A context variable: other threads keep theirs."""
    token = _GRAPHS.set(enabled)
    try:
        yield
    finally:
        _GRAPHS.reset(token)


def _round_up(n: int) -> int:
    return -(-n // GRAPH_ROUND) * GRAPH_ROUND


class BiLSTMLayer(nn.Module):
    """One layer, both directions: index 0 of every parameter is forward, 1 is backward."""

    forget_bias: torch.Tensor

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
        self.kernel_weights = cpu_kernels.WeightCache()
        self.cell_clip = options.cell_clip
        self.proj_clip = options.proj_clip
        for weight in (self.weight_ih, self.weight_hh, self.weight_proj):
            nn.init.uniform_(weight, -(cells**-0.5), cells**-0.5)

    def forward(self, x: torch.Tensor, batch_sizes: Sequence[int]) -> torch.Tensor:
        """``x``: ``[2, B, T, D]``, rows left-aligned and sorted by length, ``batch_sizes[t]`` of them still
        running at step ``t``; returns ``[2, B, T, P]``, zero past each row's length."""
        if cpu_kernels.applies(x, self):
            return cpu_kernels.bilstm_layer(self, x, batch_sizes)
        _, batch, steps, dim = x.shape
        with autocast(x, *self.parameters()):
            # the input half of every gate, x_t W_ih + b, for all steps in one product, time-major. unbind
            # splits the steps once, so backward stacks one gradient (slicing out each step would write
            # every step's gradient into a zero-filled copy of the whole product: quadratic in length)
            time_major = x.transpose(1, 2).reshape(2, steps * batch, dim)
            bias = (self.bias + self.forget_bias).unsqueeze(1)
            gates_x = torch.baddbmm(bias, time_major, self.weight_ih).view(2, steps, batch, -1)
            if _GRAPHS.get():
                return self._fixed_shape(gates_x, batch_sizes, x.dtype).to(x.dtype)
            h = x.new_zeros(2, batch, self.weight_hh.shape[1])
            c = x.new_zeros(2, batch, self.weight_proj.shape[1])
            outputs: List[torch.Tensor] = []
            for gates_x_t, active in zip(gates_x.unbind(1), batch_sizes):
                h, c = h[:, :active], c[:, :active]  # the rows that have ended drop out
                i, j, f, o = torch.baddbmm(gates_x_t[:, :active], h, self.weight_hh).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(j)
                if self.cell_clip:
                    c = c.clamp(-self.cell_clip, self.cell_clip)
                h = torch.bmm(torch.sigmoid(o) * torch.tanh(c), self.weight_proj)
                if self.proj_clip:
                    h = h.clamp(-self.proj_clip, self.proj_clip)
                outputs.append(F.pad(h, (0, 0, 0, batch - active)))
            return torch.stack(outputs, dim=2).to(x.dtype)  # out of autocast's bfloat16

    def _masked_steps(self, gates_x: torch.Tensor, running: torch.Tensor, weight_hh: torch.Tensor,
                      weight_proj: torch.Tensor, state_dtype: torch.dtype) -> torch.Tensor:
        """The step loop on fixed shapes: every row steps at every step; ``running`` (``[T, B, 1]``, bool)
        zeroes a row's output past its end. Rows never mix, so the rows that have ended change nothing.
        The casts are autocast's own (products in the weights' dtype, the cell state in ``state_dtype``),
        so that a capture without autocast computes what the plain loop computes under it."""
        _, steps, batch, _ = gates_x.shape
        h = gates_x.new_zeros(2, batch, weight_hh.shape[1], dtype=weight_hh.dtype)
        c = gates_x.new_zeros(2, batch, weight_proj.shape[1], dtype=state_dtype)
        outputs: List[torch.Tensor] = []
        for t in range(steps):
            i, j, f, o = torch.baddbmm(gates_x[:, t], h.to(weight_hh.dtype), weight_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(j)
            if self.cell_clip:
                c = c.clamp(-self.cell_clip, self.cell_clip)
            h = torch.bmm((torch.sigmoid(o) * torch.tanh(c)).to(weight_proj.dtype), weight_proj)
            if self.proj_clip:
                h = h.clamp(-self.proj_clip, self.proj_clip)
            outputs.append(torch.where(running[t], h, 0.0))
        return torch.stack(outputs, dim=2)

    def _fixed_shape(self, gates_x: torch.Tensor, batch_sizes: Sequence[int], state_dtype: torch.dtype) -> torch.Tensor:
        """``[2, B, T, P]`` from the input gates ``[2, T, B, 4C]``: replayed from a CUDA graph for inference on
        CUDA within :data:`GRAPH_TOKENS`, else the fixed-shape loop run as it is."""
        _, steps, batch, _ = gates_x.shape
        running = torch.arange(batch).unsqueeze(0) < torch.tensor(list(batch_sizes)).unsqueeze(1)
        running = running.unsqueeze(-1).to(gates_x.device)
        rows, length = _round_up(batch), _round_up(steps)
        if not gates_x.is_cuda or torch.is_grad_enabled() or rows * length > GRAPH_TOKENS:
            # what a capture computes, uncaptured: the weights cast to the products' dtype, autocast off
            weights = (self.weight_hh.to(gates_x.dtype), self.weight_proj.to(gates_x.dtype))
            with torch.autocast(gates_x.device.type, enabled=False):
                return self._masked_steps(gates_x, running, *weights, state_dtype)
        area = self._graph_area(gates_x.dtype, state_dtype, gates_x.device)
        graph = area.graph(self, length, rows)
        area.weight_hh.copy_(self.weight_hh)  # cast to the products' dtype; follows any update of the weights
        area.weight_proj.copy_(self.weight_proj)
        gates, running_rows, out = area.views(length, rows)
        gates.zero_()
        gates[:, :steps, :batch].copy_(gates_x)
        running_rows.zero_()
        running_rows[:steps, :batch].copy_(running)
        graph.replay()
        return out[:, :batch, :steps].clone()

    def _graph_area(self, dtype: torch.dtype, state_dtype: torch.dtype, device: torch.device) -> "_GraphArea":
        areas: Dict[Tuple[torch.dtype, torch.dtype, torch.device], _GraphArea] = self.__dict__.setdefault("_graph_areas", {})
        key = (dtype, state_dtype, device)
        if key not in areas:
            areas[key] = _GraphArea(self, dtype, state_dtype, device)
        return areas[key]


_POOLS: Dict[torch.device, "torch.cuda.graphs._POOL_HANDLE"] = {}


class _GraphArea:
    """The static tensors of one layer's graphs in one dtype (inputs each replay fills, the output it
    writes), sized for :data:`GRAPH_TOKENS`, each graph viewing the front of them; and the graphs, one per
    padded shape. All graphs share one memory pool per device for their temporaries: replays never overlap
    and no temporary outlives its replay."""

    def __init__(self, layer: BiLSTMLayer, dtype: torch.dtype, state_dtype: torch.dtype, device: torch.device) -> None:
        self.cells, self.proj = layer.weight_proj.shape[1], layer.weight_hh.shape[1]
        self.state_dtype = state_dtype
        self.gates = torch.zeros(2 * GRAPH_TOKENS * 4 * self.cells, dtype=dtype, device=device)
        self.running = torch.zeros(GRAPH_TOKENS, dtype=torch.bool, device=device)
        self.out = torch.zeros(2 * GRAPH_TOKENS * self.proj, dtype=dtype, device=device)
        self.weight_hh = layer.weight_hh.detach().to(dtype).clone()
        self.weight_proj = layer.weight_proj.detach().to(dtype).clone()
        self.graphs: Dict[Tuple[int, int], torch.cuda.CUDAGraph] = {}
        if device not in _POOLS:
            _POOLS[device] = torch.cuda.graph_pool_handle()
        self.pool = _POOLS[device]

    def views(self, steps: int, batch: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = steps * batch
        return (self.gates[: 2 * n * 4 * self.cells].view(2, steps, batch, 4 * self.cells),
                self.running[:n].view(steps, batch, 1), self.out[: 2 * n * self.proj].view(2, batch, steps, self.proj))

    def graph(self, layer: BiLSTMLayer, steps: int, batch: int) -> torch.cuda.CUDAGraph:
        """The graph of this padded shape, captured at its first use (the oldest goes beyond GRAPH_LIMIT)."""
        if (steps, batch) not in self.graphs:
            if len(self.graphs) >= GRAPH_LIMIT:
                del self.graphs[next(iter(self.graphs))]
            gates, running, out = self.views(steps, batch)
            args = (gates, running, self.weight_hh, self.weight_proj, self.state_dtype)
            device = gates.device
            # a warm-up on a side stream first (cuBLAS workspaces, lazy initialisation), as capture needs;
            # autocast off: the weights are cast already and the gates come in the products' dtype
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side), torch.autocast("cuda", enabled=False):
                layer._masked_steps(*args)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool), torch.autocast("cuda", enabled=False):
                out.copy_(layer._masked_steps(*args))
            self.graphs[(steps, batch)] = graph
        return self.graphs[(steps, batch)]


class BiLSTM(nn.Module):
    """``n_layers`` of :class:`BiLSTMLayer`; layers after the first add their input (skip connection)."""

    def __init__(self, options: LSTMOptions) -> None:
        super().__init__()
        self.options = options
        self.layers = nn.ModuleList(BiLSTMLayer(options.projection_dim, options) for _ in range(options.n_layers))
        self.dropout = 0.0

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """``tokens``: ``[B, T, P]``; returns one ``[B, T, 2P]`` tensor per layer, zero past each length."""
        batch, steps, _ = tokens.shape
        lengths_cpu = lengths.cpu()
        order = torch.argsort(lengths_cpu, descending=True, stable=True)
        sorted_lengths = lengths_cpu[order]
        batch_sizes = [int(n) for n in (sorted_lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)]
        order_dev = order.to(tokens.device)
        x = tokens.index_select(0, order_dev)
        reverse = _reverse_index(sorted_lengths, steps).to(tokens.device)
        x = torch.stack([x, _gather_time(x, reverse)])
        mask = (torch.arange(steps).unsqueeze(0) < sorted_lengths.unsqueeze(1)).to(tokens.device)
        mask = mask.unsqueeze(-1).to(tokens.dtype)
        unsort = torch.argsort(order_dev)
        results: List[torch.Tensor] = []
        with ieee_fp32():
            for index, layer in enumerate(self.layers):
                inputs = F.dropout(x, self.dropout, self.training) if self.dropout else x
                out = layer(inputs, batch_sizes)
                if index > 0 and self.options.use_skip_connections:
                    out = out + x
                x = out
                both = torch.cat([out[0], _gather_time(out[1], reverse)], dim=-1) * mask
                results.append(both.index_select(0, unsort))
        return results


def _reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, T]`` time index that reverses each row within its length and leaves padding in place."""
    positions = torch.arange(steps).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
