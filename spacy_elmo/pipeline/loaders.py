"""Registered weight loaders for ``[initialize.components.elmo]``."""
from pathlib import Path
from typing import Callable, Optional

from spacy.util import registry

from ..bilm.model import BiLM
from ..io import load_bilm


@registry.misc("spacy-elmo.BiLMLoader.v1")
def bilm_loader(weights: str, options: Optional[str] = None) -> Callable[[], BiLM]:
    """Load a biLM at initialize: a native directory, or a published hdf5 file with its options.json."""

    def load() -> BiLM:
        return load_bilm(Path(weights), None if options is None else Path(options))

    return load
