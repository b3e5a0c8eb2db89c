"""The character CNN token encoder: character embedding, convolutions, highway layers, projection."""
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from . import cpu_kernels
from .characters import PADDING_ID
from .options import CharCNNOptions
from .precision import autocast, ieee_fp32
from .token_ids import PublishedBytes, TokenIds

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


class WordEmbedding(nn.Module):
    """ELMoForManyLangs' word embedding, joined to the CNN's output before the projection.

    The published projection of ``[word vector; CNN output]`` is ``W [w; x] + b = W_x x + b + W_w w``:
    the CNN part stays the plain published encoder (and its CPU kernels), and this module adds
    ``W_w w`` (``projection``, no bias)."""

    def __init__(self, n_words: int, word_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, word_dim)
        self.projection = nn.Linear(word_dim, projection_dim, bias=False)

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(word_ids)
        # one [1, word_dim] product per token, so that a token's numbers do not depend on its batch-mates
        # (one [n, word_dim] product rounds differently for different n)
        weight = self.projection.weight.T.unsqueeze(0).expand(len(vectors), -1, -1)
        return torch.bmm(vectors.unsqueeze(1), weight).squeeze(1)


class CharacterEncoder(nn.Module):
    """Maps ``[n_tokens, 50]`` character ids (and, for a model with a word embedding, ``[n_tokens]`` word
    ids) to ``[n_tokens, projection_dim]`` token vectors."""

    activation: Callable[[torch.Tensor], torch.Tensor]

    def __init__(self, options: CharCNNOptions, projection_dim: int, tokens: Optional[TokenIds] = None) -> None:
        super().__init__()
        self.options = options
        tokens = PublishedBytes() if tokens is None else tokens
        self.padding_id = tokens.padding_id  # the padding inside a token (0: a padded token position)
        self.embedding = nn.Embedding(tokens.n_characters, options.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(options.embedding_dim, count, width) for width, count in options.filters)
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection = nn.Linear(options.n_filters, projection_dim)
        self.activation = torch.relu if options.activation == "relu" else torch.tanh
        self.kernel_weights = cpu_kernels.WeightCache()
        self.words = WordEmbedding(tokens.n_words, tokens.word_dim, projection_dim) if tokens.word_dim else None

    def forward(self, char_ids: torch.Tensor, word_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        vectors = self.encode_characters(char_ids)
        if self.words is None:
            return vectors
        if word_ids is None:
            raise ValueError("this biLM has a word embedding: pass the word ids with the character ids")
        with ieee_fp32():
            return vectors + self.words(word_ids).to(vectors.dtype)

    def encode_characters(self, char_ids: torch.Tensor) -> torch.Tensor:
        """The character CNN, highways and projection (all of the published encoder)."""
        with ieee_fp32():
            if cpu_kernels.applies(char_ids, self):
                return cpu_kernels.encode_tokens(self, char_ids)
            with autocast(char_ids, *self.parameters()):
                groups = crop_groups(char_ids, self.widest, padding_id=self.padding_id)
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


def crop_groups(
    char_ids: torch.Tensor, widest: int, step: int = CROP_STEP, padding_id: int = PADDING_ID
) -> List[Tuple[torch.Tensor, int]]:
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
    content = (char_ids != padding_id) & (char_ids != 0)
    positions = torch.arange(1, n_chars + 1, device=char_ids.device)
    ends = (content * positions).amax(dim=1)  # the column after each token's last character
    needed = torch.clamp((ends + widest + step - 1) // step * step, max=n_chars)
    values = needed.unique().tolist()
    if len(values) <= 1:  # one group (or no tokens)
        return [(torch.arange(char_ids.shape[0], device=char_ids.device), int(values[0]) if values else n_chars)]
    return [(torch.nonzero(needed == v).flatten(), int(v)) for v in values]
