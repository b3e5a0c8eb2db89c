"""biLM pretraining on raw text: corpus streaming, vocabulary, adaptive softmax, trainer, distributed."""
from .trainer import PretrainConfig, evaluate, load_lm, pretrain

__all__ = ["PretrainConfig", "evaluate", "load_lm", "pretrain"]
