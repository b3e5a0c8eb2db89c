"""Both directions of the biLM's LSTM stack, with projection, cell clip, projection clip and skips.

Weights keep TensorFlow's layout (``x @ W``, gate order i, j, f, o, forget bias +1 added at run time)
so that the published files map onto them one to one. The backward direction reads each sequence
reversed within its own length, so both directions see left-aligned sequences sorted by length, and
steps compute only the sequences still running.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .options import LSTMOptions
from .precision import autocast, ieee_fp32


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
