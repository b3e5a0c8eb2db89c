"""The character CNN token encoder: character embedding, convolutions, highway layers, projection."""
from typing import Callable, List, Tuple

import torch
from torch import nn

from . import cpu_kernels
from .characters import N_CHARACTERS, PADDING_ID
from .options import CharCNNOptions
from .precision import autocast, ieee_fp32

CROP_STEP = 8  # the columns of a group of tokens are a multiple of this (see crop_groups)


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
                groups = crop_groups(char_ids, self.widest)
                if len(groups) == 1:
                    return self.encode(char_ids[:, : groups[0][1]])
                pieces = [self.encode(char_ids[rows, :columns]) for rows, columns in groups]
                order = torch.cat([rows for rows, _ in groups])
                return torch.cat(pieces).index_select(0, torch.argsort(order))

    def encode(self, char_ids: torch.Tensor) -> torch.Tensor:
        """The published maths: ``[n, columns]`` character ids to ``[n, P]`` token vectors."""
        x = self.embedding(char_ids).transpose(1, 2)  # [n_tokens, emb, columns]
        # per width: a valid convolution over the positions, the max over positions, the activation
        x = torch.cat([self.activation(conv(x).amax(dim=-1)) for conv in self.convs], dim=-1)
        for highway in self.highways:
            x = highway(x)
        return self.projection(x).to(self.projection.weight.dtype)  # out of autocast's bfloat16

    @property
    def widest(self) -> int:
        return max(width for width, _ in self.options.filters)


def crop_groups(char_ids: torch.Tensor, widest: int, step: int = CROP_STEP) -> List[Tuple[torch.Tensor, int]]:
    """``(rows, columns)``: the tokens in groups of similar length, each with the leading columns that
    :meth:`CharacterEncoder.encode` needs to give what it gives on all of them.

    A published token is its characters, then padding (a row of id 0, a padded token position, is
    padding throughout). Every window that starts at or after the padding holds only padding, so
    all give the value of the first of them: the maxima over ``longest + widest`` columns (the first
    padding-only window of every width included) are those over all columns, and their gradients
    add up to the same sums. ``columns`` is rounded up to a multiple of ``step``, so that there are
    few groups.
    """
    n_chars = char_ids.shape[1]
    content = (char_ids != PADDING_ID) & (char_ids != 0)
    positions = torch.arange(1, n_chars + 1, device=char_ids.device)
    ends = (content * positions).amax(dim=1)  # the column after each token's last character
    needed = torch.clamp((ends + widest + step - 1) // step * step, max=n_chars)
    values = needed.unique().tolist()
    if len(values) <= 1:  # one group (or no tokens)
        return [(torch.arange(char_ids.shape[0], device=char_ids.device), int(values[0]) if values else n_chars)]
    return [(torch.nonzero(needed == v).flatten(), int(v)) for v in values]
