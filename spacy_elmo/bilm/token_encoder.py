"""The character CNN token encoder: character embedding, convolutions, highway layers, projection."""
from typing import Callable

import torch
from torch import nn

from . import cpu_kernels
from .characters import N_CHARACTERS
from .options import CharCNNOptions
from .precision import autocast, ieee_fp32


class Highway(nn.Module):
    """bilm-tf's highway layer: ``g = sigmoid(x W_carry + b_carry)``, ``y = g relu(x W_transform + b_transform)
    + (1 - g) x``. Both products run as one: the transform and carry weights are the halves of ``proj``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.proj(x), x)

    def combine(self, projected: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The layer's output from ``projected = x @ proj.weight.T + proj.bias``."""
        transform, carry = projected.split(self.dim, dim=-1)
        gate = torch.sigmoid(carry)
        return gate * torch.relu(transform) + (1.0 - gate) * x


class CharacterEncoder(nn.Module):
    """Maps ``[n_tokens, 50]`` character ids to ``[n_tokens, projection_dim]`` token vectors."""

    activation: Callable[[torch.Tensor], torch.Tensor]

    def __init__(self, options: CharCNNOptions, projection_dim: int) -> None:
        super().__init__()
        self.options = options
        self.embedding = nn.Embedding(N_CHARACTERS, options.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(options.embedding_dim, count, width) for width, count in options.filters)
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection = nn.Linear(options.n_filters, projection_dim)
        self.activation = torch.relu if options.activation == "relu" else torch.tanh
        self.kernel_weights = cpu_kernels.WeightCache()

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        with ieee_fp32():
            if cpu_kernels.applies(char_ids, self):
                return cpu_kernels.encode_tokens(self, char_ids)
            with autocast(char_ids, *self.parameters()):
                x = self.embedding(char_ids).transpose(1, 2)  # [n_tokens, emb, 50]
                # per width: a valid convolution over the 50 positions, the max over positions, the activation
                x = torch.cat([self.activation(conv(x).amax(dim=-1)) for conv in self.convs], dim=-1)
                for highway in self.highways:
                    x = highway(x)
                return self.projection(x).to(self.projection.weight.dtype)  # out of autocast's bfloat16
