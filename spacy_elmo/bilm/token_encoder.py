"""The character CNN token encoder: char embedding, convolutions, highway layers, projection.

All filter widths run as one matrix multiply: every filter is zero-padded to the widest width and
applied to the same windows. Windows that start past a token's end-of-word mark see only padding and
all give the value of the first such window, so only ``longest token + 1`` window starts are computed
(tokens are sorted by length and encoded in chunks); the maxima are exactly the published ones.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from .characters import N_CHARACTERS
from .options import CharCNNOptions
from .precision import WeightCache, ieee_fp32, inference_dtype, linear, needs_grad, pack

PADDING_ID = 261  # the published padding character (260) plus the id offset
CHUNK_WINDOWS = 2048  # tokens x window starts per matrix multiply: keeps the products in cache


class Highway(nn.Module):
    """bilm-tf's highway layer: ``t = sigmoid(x Wc + bc)``, ``y = t * relu(x Wt + bt) + (1 - t) * x``.

    Both products run as one matrix multiply; ``transform`` and ``carry`` are the halves of ``proj``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.proj(x), x)

    def combine(self, projected: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        transform, carry = projected.split(self.dim, dim=-1)
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
        self.max_width = max(width for width, _ in options.filters)
        self._inference_weights = WeightCache()

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        n_tokens, n_chars = char_ids.shape
        if n_tokens == 0:
            return char_ids.new_zeros(0, self.projection.out_features, dtype=self.projection.weight.dtype)
        # characters before the padding: a published token is contiguous characters, then padding
        # (rows of id 0, padded token positions, give identical windows, so count as length 0)
        lengths = ((char_ids != PADDING_ID) & (char_ids != 0)).sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        starts = (torch.minimum(lengths[order] + 1, lengths.new_tensor(n_chars))).tolist()
        with ieee_fp32():
            pieces: List[torch.Tensor] = []
            begin = 0
            while begin < n_tokens:
                end = begin + 1
                while end < n_tokens and (end + 1 - begin) * starts[end] <= CHUNK_WINDOWS:
                    end += 1
                pieces.append(self._encode_sorted(char_ids[order[begin:end]], starts[end - 1]))
                begin = end
            encoded = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return encoded.index_select(0, torch.argsort(order))

    def _encode_sorted(self, char_ids: torch.Tensor, n_starts: int) -> torch.Tensor:
        """Token vectors for tokens whose windows starting at ``n_starts`` or later repeat earlier ones."""
        n_tokens, n_chars = char_ids.shape
        width = self.max_width
        ids = char_ids[:, : n_starts + width - 1]
        if ids.shape[1] < n_starts + width - 1:  # zero embedding rows under zero-padded filter weights
            ids = F.pad(ids, (0, n_starts + width - 1 - ids.shape[1]))
        grad = needs_grad(*self.parameters())
        dtype = torch.float32 if grad else inference_dtype()
        windows = self.embedding(ids).to(dtype).unfold(1, width, 1)  # [n, starts, emb, width]
        windows = windows.reshape(n_tokens * n_starts, -1)
        if grad:
            conv = F.linear(windows, self._filters())
        else:
            conv = linear(windows, self._inference_filters(dtype))
        conv = conv.view(n_tokens, n_starts, -1)
        if n_starts + width - 1 > n_chars:  # windows running past the 50 characters do not exist
            conv = conv + self._invalid_windows(n_starts, n_chars, conv)
        bias = torch.cat([c.bias for c in self.convs])
        x = self.activation(conv.amax(dim=1).float() + bias)  # max, then the activation, as published
        for highway in self.highways:
            if grad:
                x = highway(x)
            else:
                x = highway.combine(self._inference_linear(highway.proj, x, dtype), x)
        return self.projection(x) if grad else self._inference_linear(self.projection, x, dtype)

    def _filters(self) -> torch.Tensor:
        """``[n_filters, emb * max_width]``: every filter zero-padded on the right to the widest width."""
        return torch.cat([F.pad(c.weight, (0, self.max_width - c.weight.shape[-1])) for c in self.convs]).flatten(1)

    def _inference_filters(self, dtype: torch.dtype) -> torch.Tensor:
        weights = [c.weight for c in self.convs]
        return self._inference_weights.get(("filters", dtype), weights, lambda: pack(self._filters().to(dtype)))

    def _inference_linear(self, layer: nn.Linear, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        weight = self._inference_weights.get((id(layer), dtype), [layer.weight], lambda: pack(layer.weight.to(dtype)))
        if dtype == torch.float32:
            return linear(x, weight, layer.bias)
        return linear(x.to(dtype), weight).float() + layer.bias

    def _invalid_windows(self, n_starts: int, n_chars: int, like: torch.Tensor) -> torch.Tensor:
        """``[n_starts, n_filters]``: 0 where a filter's window fits in ``n_chars``, else -inf."""
        starts = torch.arange(n_starts, device=like.device).unsqueeze(1)
        widths = torch.cat([torch.full((c.weight.shape[0],), c.weight.shape[-1]) for c in self.convs])
        fits = starts + widths.to(like.device).unsqueeze(0) <= n_chars
        return torch.zeros(fits.shape, dtype=like.dtype, device=like.device).masked_fill(~fits, float("-inf"))
