"""A drop-in for AllenNLP's ELMo API on spacy-elmo's biLM: change one import.

``from allennlp.modules.elmo import Elmo, batch_to_ids`` and ``from allennlp.commands.elmo import
ElmoEmbedder`` become ``from spacy_elmo.allennlp import Elmo, batch_to_ids, ElmoEmbedder``.
Same names, arguments and outputs; stateless (see ``docs/allennlp.md``). Nothing below this package
imports it.
"""
from .elmo import ConfigurationError, Elmo, ScalarMix, batch_to_ids
from .embedder import ElmoEmbedder

__all__ = ["Elmo", "ElmoEmbedder", "ScalarMix", "batch_to_ids", "ConfigurationError"]
