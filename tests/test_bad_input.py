"""Awkward Docs: no crash, the right shapes, the same output every time."""
import numpy
import pytest
from spacy.tokens import Doc

import reference_math as R
from spacy_elmo.bilm import Embedder
from spacy_elmo.io import load_bilm

CASES = {
    "empty": [],
    "whitespace tokens": ["a", " ", "\n\n", "\t", "b"],
    "200-character token": ["x" * 200, "y"],
    "non-ASCII and emoji": ["Zürich", "日本語", "😀👍🏽", "naïve", "—"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_awkward_docs(tiny_nlp, tiny_opts, tiny_arrays, name):
    words = CASES[name]
    spaces = [False] * len(words)
    first = tiny_nlp(Doc(tiny_nlp.vocab, words=words, spaces=spaces))
    second = tiny_nlp(Doc(tiny_nlp.vocab, words=words, spaces=spaces))
    layers = first._.elmo_data.layers
    assert layers.shape == (3, len(words), 32)
    assert numpy.array_equal(layers, second._.elmo_data.layers)
    assert numpy.isfinite(layers).all()
    assert first._.elmo.shape == (32,)
    if words:
        assert numpy.abs(layers - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4
        assert first[0]._.elmo.shape == (32,)
    else:
        assert not first._.elmo.any()


def test_long_token_is_truncated_like_the_reference(tiny_nlp):
    a = tiny_nlp(Doc(tiny_nlp.vocab, words=["x" * 48 + "a"]))._.elmo_data.layers
    b = tiny_nlp(Doc(tiny_nlp.vocab, words=["x" * 48 + "b"]))._.elmo_data.layers
    assert numpy.allclose(a, b, atol=1e-6)  # only the first 48 bytes are read


def test_100k_token_doc_without_sentence_boundaries(tiny_nlp):
    words = [f"w{i % 997}" for i in range(100_000)]
    doc = Doc(tiny_nlp.vocab, words=words)
    layers = tiny_nlp(doc)._.elmo_data.layers
    assert layers.shape == (3, 100_000, 32)
    assert numpy.isfinite(layers).all()
    again = tiny_nlp(Doc(tiny_nlp.vocab, words=words))._.elmo_data.layers
    assert numpy.array_equal(layers, again)


def test_lone_surrogates(tiny_nlp, tiny_files, tiny_opts, tiny_arrays):
    """spaCy's StringStore rejects lone surrogates, so no Doc holds one; the biLM itself drops them like the
    reference does (UTF-8 encoding with errors ignored)."""
    with pytest.raises(UnicodeEncodeError):
        Doc(tiny_nlp.vocab, words=["\ud800"])
    words = ["\ud800", "ok", "a\udfffb"]
    got = Embedder(load_bilm(tiny_files[1], tiny_files[0])).embed([words])[0]
    assert numpy.abs(got - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4
