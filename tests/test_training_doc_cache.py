"""The per-Doc layer cache of a frozen biLM: epochs after the first do not rerun the biLM."""
import numpy
import pytest
import spacy

from spacy_elmo.bilm.embedder import Embedder
from spacy_elmo.layers.bilm_model import get_doc_cache
from helpers import build, train_steps

TEXTS = ["the cat sat on the mat .", "a dog barked . it ran away", "the cat sat on the mat .", "birds fly"]


@pytest.fixture
def embedded(monkeypatch):
    """Counts the sentences the biLM is run on (the real Embedder.embed_into runs)."""
    counts = []
    real = Embedder.embed_into

    def counting(self, sentences, sink):
        counts.append(len(sentences))
        return real(self, sentences, sink)

    monkeypatch.setattr(Embedder, "embed_into", counting)
    return counts


def elmo_nlp(tiny_files, **settings):
    options, weights = tiny_files
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options), "model": settings})
    return nlp


def test_seen_docs_are_not_recomputed_and_give_the_same_layers(tiny_files, embedded):
    nlp = elmo_nlp(tiny_files)
    first = list(nlp.pipe(TEXTS))
    assert sum(embedded) == 3  # the repeated text is computed once
    again = list(nlp.pipe(TEXTS))
    assert sum(embedded) == 3
    uncached = list(elmo_nlp(tiny_files, doc_cache_size=0).pipe(TEXTS))
    assert sum(embedded) == 3 + 4
    for a, b, c in zip(first, again, uncached):
        numpy.testing.assert_array_equal(a._.elmo_data.layers, b._.elmo_data.layers)
        numpy.testing.assert_allclose(a._.elmo_data.layers, c._.elmo_data.layers, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        first[0]._.elmo_data.layers[0, 0, 0] = 1.0  # shared with the cache


def test_the_key_is_what_the_bilm_reads(tiny_files, embedded):
    nlp = elmo_nlp(tiny_files)
    doc = nlp("a dog barked . it ran away")
    split = nlp.make_doc("a dog barked . it ran away")
    for token in split:
        token.is_sent_start = token.i in (0, 4)
    split = nlp.get_pipe("elmo")(split)
    assert embedded == [1, 2]  # other windows: computed again, as two sentences
    assert not numpy.array_equal(doc._.elmo_data.layers, split._.elmo_data.layers)
    assert len(get_doc_cache(nlp.get_pipe("elmo").model).entries) == 2


def test_the_cache_is_bounded_in_tokens(tiny_files, embedded):
    nlp = elmo_nlp(tiny_files, doc_cache_size=10)
    list(nlp.pipe(TEXTS))
    cache = get_doc_cache(nlp.get_pipe("elmo").model)
    # 7 tokens, then 7 more would not fit, then 2 do
    assert cache.n_tokens == 9 and sorted(len(k[0]) for k in cache.entries) == [2, 7]
    list(nlp.pipe(TEXTS))
    assert sum(embedded) == 3 + 1  # only the Doc that did not fit runs again


def test_no_cache_when_fine_tuning(tiny_files):
    nlp = elmo_nlp(tiny_files, frozen=False)
    nlp("the cat sat")
    assert get_doc_cache(nlp.get_pipe("elmo").model) is None


def test_initialize_fills_the_cache_and_training_does_not_rerun_the_bilm(tmp_path, tiny_files, embedded):
    nlp = build("ner_elmo", tmp_path, tiny_files)
    assert sum(embedded) == 8  # the training sentences, in full-size biLM batches
    train_steps(nlp, 3)
    assert sum(embedded) == 8


@pytest.mark.parametrize("size,expected", [(0, 0), (20, 3)])
def test_initialize_warms_the_cache_within_its_bound(tmp_path, tiny_files, embedded, size, expected):
    nlp = build("ner_elmo", tmp_path, tiny_files, **{"components.elmo.model.doc_cache_size": size})
    assert sum(embedded) == expected  # 5 + 7 + 6 tokens fit in 20, the next 5 do not
    train_steps(nlp, 1)
    assert sum(embedded) == 8  # the rest are computed in training
    cache = get_doc_cache(nlp.get_pipe("elmo").model)
    assert cache is None if size == 0 else cache.n_tokens <= size
