"""biLM pretraining on raw text: corpus streaming, vocabulary, adaptive softmax, trainer, distributed."""
from .scores import LMScorer, SentenceScore
from .trainer import PretrainConfig, evaluate, load_lm, pretrain

__all__ = ["LMScorer", "PretrainConfig", "SentenceScore", "evaluate", "load_lm", "pretrain"]
