"""Registered weight loaders for ``[initialize.components.elmo]``."""
from pathlib import Path
from typing import Callable, Optional

from spacy.util import registry

from ..bilm.model import BiLM
from ..io import load_bilm


@registry.misc("spacy-elmo.BiLMLoader.v1")
def bilm_loader(weights: Optional[str], options: Optional[str] = None) -> Callable[[], BiLM]:
    """Load a biLM at initialize: a native directory, or a published hdf5 file with its options.json.

    ``weights`` may be null in a config (``${paths.elmo_weights}`` not set yet, as for ``spacy debug
    config``); loading then fails with an error that says so.
    """

    def load() -> BiLM:
        if weights is None:
            raise ValueError("spacy-elmo.BiLMLoader.v1: no weights given: set paths.elmo_weights (and elmo_options)")
        return load_bilm(Path(weights), None if options is None else Path(options))

    return load
