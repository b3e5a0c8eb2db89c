"""The biLM: character CNN token encoder followed by the bidirectional LSTM stack."""
from typing import Optional

import torch
from torch import nn

from .lstm import BiLSTM
from .options import BiLMOptions
from .token_encoder import CharacterEncoder


class BiLM(nn.Module):
    """ELMo's biLM. Stateless: every call starts from zero LSTM state.

    Layer 0 of the output is the token representation repeated for both directions, so every layer
    is ``2 * projection_dim`` wide.
    """

    def __init__(self, options: BiLMOptions) -> None:
        super().__init__()
        self.options = options
        self.token_encoder = CharacterEncoder(options.char_cnn, options.lstm.projection_dim)
        self.lstm = BiLSTM(options.lstm)

    def encode_tokens(self, char_ids: torch.Tensor) -> torch.Tensor:
        """``[N, 50]`` character ids to ``[N, P]`` context-independent token vectors."""
        return self.token_encoder(char_ids)

    def contextualize(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, P]`` token vectors (sentence marks included) to ``[L, B, T, 2P]`` layers."""
        steps = tokens.shape[1]
        mask = (torch.arange(steps, device=tokens.device).unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1))
        token_layer = torch.cat([tokens, tokens], dim=-1) * mask.unsqueeze(-1).to(tokens.dtype)
        return torch.stack([token_layer, *self.lstm(tokens, lengths)])

    def forward(self, char_ids: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[B, T, 50]`` character ids (0 marks padded positions) to ``[L, B, T, 2P]`` layers."""
        batch, steps, chars = char_ids.shape
        if lengths is None:
            lengths = (char_ids[:, :, 0] > 0).sum(dim=1)
        tokens = self.encode_tokens(char_ids.reshape(-1, chars)).view(batch, steps, -1)
        return self.contextualize(tokens, lengths)
