"""The character CNN token encoder: char embedding, convolutions, highway layers, projection."""
import torch
from torch import nn

from .characters import N_CHARACTERS
from .options import CharCNNOptions


class Highway(nn.Module):
    """bilm-tf's highway layer: ``t = sigmoid(x Wc + bc)``, ``y = t * relu(x Wt + bt) + (1 - t) * x``.

    Both products run as one matrix multiply; ``transform`` and ``carry`` are the halves of ``proj``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        transform, carry = self.proj(x).split(self.dim, dim=-1)
        gate = torch.sigmoid(carry)
        return gate * torch.relu(transform) + (1.0 - gate) * x


class CharacterEncoder(nn.Module):
    """Maps ``[n_tokens, 50]`` character ids to ``[n_tokens, projection_dim]`` token vectors."""

    def __init__(self, options: CharCNNOptions, projection_dim: int) -> None:
        super().__init__()
        self.options = options
        self.embedding = nn.Embedding(N_CHARACTERS, options.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(options.embedding_dim, count, width) for width, count in options.filters)
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection = nn.Linear(options.n_filters, projection_dim)
        self.activation = torch.relu if options.activation == "relu" else torch.tanh

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(char_ids).transpose(1, 2)  # [n, emb, chars]
        # max over positions, then the activation, as the published model does
        x = torch.cat([self.activation(conv(x).amax(dim=-1)) for conv in self.convs], dim=-1)
        for highway in self.highways:
            x = highway(x)
        return self.projection(x)
