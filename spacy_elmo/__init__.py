"""spacy-elmo: ELMo for spaCy v3."""
from .bilm import BiLM, BiLMOptions, Embedder
from .io import load_bilm, save_hdf5, save_native
from .doc_data import ElmoDocData
from .pipeline import ElmoComponent

__version__ = "0.1.0"
__all__ = ["BiLM", "BiLMOptions", "Embedder", "ElmoComponent", "ElmoDocData", "load_bilm", "save_hdf5", "save_native"]
