"""The biLSTM's differentiable forward pass, shaped for training speed.

Same maths and parameters as :class:`spacy_elmo.bilm.lstm.BiLSTM` (both directions in one batched
multiply per step, forget bias +1, cell and projection clip, skip connections, ``BiLSTM.dropout`` on each
layer's input). The difference is in the autograd graph: the input products are split into per-step
tensors once (``unbind``), so the backward pass stacks one gradient instead of writing every step's slice
into a zero-filled copy of the whole ``[2, B, T, 4C]`` product, which made backward quadratic in length.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

from ..bilm.lstm import BiLSTM, BiLSTMLayer


def _layer(layer: BiLSTMLayer, x: torch.Tensor, batch_sizes: Sequence[int]) -> torch.Tensor:
    """``x``: ``[2, T, B, D]`` time-major, left-aligned, rows sorted by length; returns ``[2, T, B, P]``."""
    _, steps, batch, dim = x.shape
    cells = layer.weight_hh.shape[-1] // 4
    bias = (layer.bias + layer.forget_bias).unsqueeze(1)
    gates_x = torch.baddbmm(bias, x.reshape(2, steps * batch, dim), layer.weight_ih).view(2, steps, batch, -1)
    h = x.new_zeros(2, batch, layer.weight_hh.shape[1])
    c = x.new_zeros(2, batch, cells)
    outputs: List[torch.Tensor] = []
    for step_x, active in zip(gates_x.unbind(1), batch_sizes):
        h, c = h[:, :active], c[:, :active]
        gates = torch.baddbmm(step_x[:, :active], h, layer.weight_hh)
        i, j, f, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(j)
        if layer.cell_clip:
            c = c.clamp(-layer.cell_clip, layer.cell_clip)
        h = torch.bmm(torch.sigmoid(o) * torch.tanh(c), layer.weight_proj)
        if layer.proj_clip:
            h = h.clamp(-layer.proj_clip, layer.proj_clip)
        outputs.append(F.pad(h, (0, 0, 0, batch - active)) if active < batch else h)
    return torch.stack(outputs, dim=1)


def bilstm_top(lstm: BiLSTM, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The top layer ``[B, T, 2P]`` (forward half, then backward half) of ``lstm`` over ``tokens`` ``[B, T, P]``."""
    batch, steps, _ = tokens.shape
    lengths_cpu = lengths.cpu()
    order = torch.argsort(lengths_cpu, descending=True, stable=True)
    sorted_lengths = lengths_cpu[order]
    batch_sizes = [int(n) for n in (sorted_lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)]
    positions = torch.arange(steps).unsqueeze(1)
    # time index, [T, B]: reverses each sequence within its length and leaves padding in place
    reverse = torch.where(positions < sorted_lengths, sorted_lengths - 1 - positions, positions).to(tokens.device)
    x = tokens.index_select(0, order.to(tokens.device)).transpose(0, 1)  # [T, B, P]
    x = torch.stack([x, _gather_time(x, reverse)])
    for index, layer in enumerate(lstm.layers):
        inputs = F.dropout(x, lstm.dropout, lstm.training) if lstm.dropout else x
        out = _layer(layer, inputs, batch_sizes)
        x = out + x if index > 0 and lstm.options.use_skip_connections else out
    mask = (positions < sorted_lengths).to(tokens.device).unsqueeze(-1).to(x.dtype)
    top = torch.cat([x[0], _gather_time(x[1], reverse)], dim=-1) * mask
    return top.transpose(0, 1).index_select(0, torch.argsort(order).to(tokens.device))


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index[t, b], b]`` for ``x`` ``[T, B, D]`` and ``index`` ``[T, B]``."""
    return x.gather(0, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
