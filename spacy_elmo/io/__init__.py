"""Reading and writing biLM weights: every family on disk (published hdf5, NLPL, ELMoForManyLangs) and
spacy-elmo's native format."""
from .efml import load_efml, save_efml
from .families import (
    FAMILIES, extract_vocabulary, family_of, load_bilm, load_with_family, model_language, model_options,
)
from .hdf5 import load_hdf5, save_hdf5
from .native import bilm_from_bytes, bilm_to_bytes, load_native, save_native

__all__ = [
    "load_bilm", "load_with_family", "family_of", "model_language", "model_options", "extract_vocabulary", "FAMILIES",
    "load_hdf5", "save_hdf5", "load_native", "save_native", "load_efml", "save_efml", "bilm_to_bytes",
    "bilm_from_bytes",
]
