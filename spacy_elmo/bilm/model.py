"""The biLM: character CNN token encoder followed by the bidirectional LSTM stack."""
from typing import Optional, Sequence

import torch
from torch import nn

from .lstm import BiLSTM
from .options import BiLMOptions
from .token_encoder import CharacterEncoder
from .token_ids import PublishedBytes, TokenIds


class BiLM(nn.Module):
    """ELMo's biLM. Stateless: every call starts from zero LSTM state.

    Layer 0 of the output is the token representation repeated for both directions, so every layer
    is ``2 * projection_dim`` wide.

    ``tokens`` says how a token becomes ids (:mod:`.token_ids`): the published UTF-8 bytes unless given
    (ELMoForManyLangs: a character vocabulary, and maybe a word embedding joined to the CNN's output).
    """

    def __init__(self, options: BiLMOptions, tokens: Optional[TokenIds] = None) -> None:
        super().__init__()
        self.options = options
        self.tokens: TokenIds = PublishedBytes() if tokens is None else tokens
        self.token_encoder = CharacterEncoder(options.char_cnn, options.lstm.projection_dim, self.tokens)
        self.lstm = BiLSTM(options.lstm)

    def encode_tokens(self, char_ids: torch.Tensor, word_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[N, 50]`` character ids (and ``[N]`` word ids, for a model with a word embedding) to ``[N, P]``
        context-independent token vectors."""
        return self.token_encoder(char_ids, word_ids)

    def encode_words(self, words: Sequence[str], device: Optional[torch.device] = None) -> torch.Tensor:
        """Token strings to ``[N, P]`` token vectors (``self.tokens.bos``/``eos`` are the sentence marks)."""
        chars, word_ids = self.tokens.ids(words)
        as_tensor = lambda a: None if a is None else torch.from_numpy(a).to(device)  # noqa: E731
        return self.encode_tokens(torch.from_numpy(chars).to(device), as_tensor(word_ids))

    def contextualize(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, P]`` token vectors (sentence marks included) to ``[L, B, T, 2P]`` layers."""
        steps = tokens.shape[1]
        mask = (torch.arange(steps, device=tokens.device).unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1))
        token_layer = torch.cat([tokens, tokens], dim=-1) * mask.unsqueeze(-1).to(tokens.dtype)
        return torch.stack([token_layer, *self.lstm(tokens, lengths)])

    def forward(
        self, char_ids: torch.Tensor, lengths: Optional[torch.Tensor] = None, word_ids: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``[B, T, 50]`` character ids (0 marks padded positions; ``[B, T]`` word ids for a model with a word
        embedding) to ``[L, B, T, 2P]`` layers."""
        batch, steps, chars = char_ids.shape
        if lengths is None:
            lengths = (char_ids[:, :, 0] > 0).sum(dim=1)
        flat_words = None if word_ids is None else word_ids.reshape(-1)
        tokens = self.encode_tokens(char_ids.reshape(-1, chars), flat_words).view(batch, steps, -1)
        return self.contextualize(tokens, lengths)
