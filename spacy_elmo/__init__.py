"""spacy-elmo: ELMo for spaCy v3."""
from .about import __version__
from .bilm import BiLM, BiLMOptions, Embedder
from .io import load_bilm, save_hdf5, save_native
from .doc_data import ElmoDocData, install_extensions
from .pipeline import ElmoComponent

# Docs read back from a DocBin (or sent between processes) carry ``doc._.elmo_data``: the extensions must
# exist before any component is built. Registration is guarded, so importing twice is harmless.
install_extensions()

__all__ = ["BiLM", "BiLMOptions", "Embedder", "ElmoComponent", "ElmoDocData", "load_bilm", "save_hdf5", "save_native"]
