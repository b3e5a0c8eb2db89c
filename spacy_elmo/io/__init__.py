"""Reading and writing biLM weights: the published hdf5 layout and spacy-elmo's native format."""
from pathlib import Path
from typing import Optional, Union

from ..bilm.model import BiLM
from ..files import existing
from .hdf5 import load_hdf5, save_hdf5
from .native import bilm_from_bytes, bilm_to_bytes, load_native, save_native

PathLike = Union[str, Path]


def load_bilm(weights: PathLike, options: Optional[PathLike] = None) -> BiLM:
    """Load a biLM: a native directory, or a published hdf5 file with its ``options.json``."""
    weights = existing(weights, "ELMo weights")
    if weights.is_dir():
        return load_native(weights)
    if options is None:
        raise ValueError(f"{weights}: a published hdf5 weight file needs its options.json (options=...)")
    return load_hdf5(options, weights)


__all__ = ["load_bilm", "load_hdf5", "save_hdf5", "load_native", "save_native", "bilm_to_bytes", "bilm_from_bytes"]
