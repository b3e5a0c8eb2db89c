"""The output softmax shared by both LM directions: torch's adaptive softmax (Grave et al. 2017).

Chosen over bilm-tf's sampled softmax because it gives exact, normalised log probabilities in training
and evaluation alike (no separate full-softmax pass, no sampler state to checkpoint), and on CPU its head
of frequent tokens plus low-rank tail clusters costs a small fraction of a full softmax.
"""
from typing import List, Sequence

from torch import nn

DEFAULT_CUTOFFS = (2000, 10000, 50000)
DIV_VALUE = 4.0


def default_cutoffs(vocab_size: int) -> List[int]:
    """Cluster boundaries for a frequency-ordered vocabulary of ``vocab_size`` tokens."""
    cutoffs = [c for c in DEFAULT_CUTOFFS if c < vocab_size - 1]
    return cutoffs or [max(1, vocab_size // 2)]


def make_softmax(input_dim: int, vocab_size: int, cutoffs: Sequence[int]) -> nn.AdaptiveLogSoftmaxWithLoss:
    return nn.AdaptiveLogSoftmaxWithLoss(input_dim, vocab_size, list(cutoffs), div_value=DIV_VALUE)
