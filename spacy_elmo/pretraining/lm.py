"""The paper's objective: a forward and a backward LM over one biLM, with one shared softmax.

At every position the top layer's forward half predicts the next token and its backward half the previous
one; the sentence marks are targets too (``</S>`` forwards, ``<S>`` backwards). Dropout: the biLSTM's own
(on each layer's input) and on the top layer before the softmax, as bilm-tf does.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..bilm.model import BiLM
from .softmax import make_softmax


class BiLMLanguageModel(nn.Module):
    def __init__(self, bilm: BiLM, vocab_size: int, cutoffs: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        self.bilm = bilm
        self.softmax = make_softmax(bilm.options.lstm.projection_dim, vocab_size, cutoffs)
        self.cutoffs = list(cutoffs)
        self.set_dropout(dropout)

    def set_dropout(self, dropout: float) -> None:
        self.dropout = dropout
        self.bilm.lstm.dropout = dropout

    def top_states(self, char_ids: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The top layer ``[B, T, 2P]`` (sentence marks included), after the head's dropout. For a biLM
        with a word embedding the last column of ``char_ids`` is the word ids (:class:`CharIdCache`)."""
        if self.bilm.tokens.word_dim:
            vectors = self.bilm.encode_tokens(char_ids[:, :-1], char_ids[:, -1])
        else:
            vectors = self.bilm.encode_tokens(char_ids)
        top = self.bilm.lstm(vectors[index], lengths)[-1]
        return F.dropout(top, self.dropout, self.training) if self.dropout else top

    def target_log_probs(
        self, char_ids: torch.Tensor, index: torch.Tensor, word_ids: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Log probabilities of the targets, flat: every sequence's forward targets (its tokens, then
        ``</S>``), then every sequence's backward targets (``<S>``, then its tokens), ``lengths - 1`` each."""
        top = self.top_states(char_ids, index, lengths)
        width = top.shape[-1] // 2
        steps = index.shape[1]
        mask = torch.arange(steps - 1, device=index.device).unsqueeze(0) < (lengths.to(index.device) - 1).unsqueeze(1)
        states = torch.cat([top[:, :-1, :width][mask], top[:, 1:, width:][mask]])
        targets = torch.cat([word_ids[:, 1:][mask], word_ids[:, :-1][mask]])
        # float32 whatever autocast is around: torch's adaptive softmax writes its clusters' log
        # probabilities into one float32 tensor, and the sums of the objective want the precision
        with torch.autocast(states.device.type, enabled=False):
            log_probs = self.softmax(states.float(), targets).output
        n = int(mask.sum())
        return log_probs[:n], log_probs[n:]

    def forward(
        self, char_ids: torch.Tensor, index: torch.Tensor, word_ids: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Summed negative log likelihoods ``[forward, backward]`` of the batch (see :class:`Batch`)."""
        fwd, bwd = self.target_log_probs(char_ids, index, word_ids, lengths)
        return -torch.stack([fwd.sum(), bwd.sum()])
