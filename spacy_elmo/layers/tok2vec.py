"""A tok2vec for NER and textcat: the task's ELMo mix next to spaCy's own token features, then an encoder."""
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d


@registry.architectures("spacy-elmo.ElmoTok2Vec.v1")
def ElmoTok2Vec(
    embed: Model[List[Doc], List[Floats2d]],
    encode: Model[List[Floats2d], List[Floats2d]],
    elmo: Optional[Model[List[Doc], List[Floats2d]]] = None,
    maxout_pieces: int = 3,
) -> Model[List[Doc], List[Floats2d]]:
    """``encode(maxout([elmo(doc); embed(doc)]))`` per token.

    embed: spaCy's token features, e.g. ``spacy.MultiHashEmbed.v2``.
    encode: e.g. ``spacy.MaxoutWindowEncoder.v2`` or ``spacy.TorchBiLSTMEncoder.v1``; the maxout merges the
        concatenated features to its input width.
    elmo: the task's ELMo vectors, e.g. ``spacy-elmo.ElmoListener.v1``. Without it the model is the
        matching baseline: the same layers, without ELMo.
    maxout_pieces: pieces of the merging maxout layer.
    """
    width = encode.get_dim("nI") if encode.has_dim("nI") is True else encode.get_dim("nO")
    features = embed if elmo is None else concatenate(elmo, embed)
    merge: Model = with_array(Maxout(nO=width, nP=maxout_pieces, dropout=0.0, normalize=True))
    model: Model = chain(features, merge, encode)
    model.set_dim("nO", encode.get_dim("nO"))
    model.set_ref("embed", embed)
    model.set_ref("encode", encode)
    if elmo is not None:
        model.set_ref("elmo", elmo)
    model.name = "elmo_tok2vec"
    return model
