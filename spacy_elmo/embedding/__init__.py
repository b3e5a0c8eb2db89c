"""A corpus to ELMo vectors on disk (``python -m spacy_elmo embed``), and ELMo columns for Ray Data and Spark."""
from .ray_data import ElmoVectors, embed_dataset
from .run import embed_corpus
from .settings import EmbedSettings
from .spark import embed_dataframe
from .worker import Worker

__all__ = ["EmbedSettings", "embed_corpus", "Worker", "ElmoVectors", "embed_dataset", "embed_dataframe"]
