"""The ELMo biLM in plain PyTorch; usable without spaCy."""
from .embedder import Embedder
from .model import BiLM
from .options import BiLMOptions, CharCNNOptions, LSTMOptions, preset

__all__ = ["BiLM", "BiLMOptions", "CharCNNOptions", "LSTMOptions", "Embedder", "preset"]
