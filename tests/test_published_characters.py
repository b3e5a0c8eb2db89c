"""Literal ``<S>`` / ``</S>`` tokens are the sentence marks, as in bilm-tf and AllenNLP: in the character ids,
in inference (with and without the character-CNN cache), in the pipeline and in pretraining, each against
the independent reference maths."""
from collections import Counter

import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_math as R
from spacy_elmo.bilm import Embedder
from spacy_elmo.bilm.characters import word_to_ids, words_to_ids
from spacy_elmo.io import load_bilm
from spacy_elmo.pretraining.batches import CharIdCache, tensorize
from spacy_elmo.pretraining.vocab import Vocab

MARKED = [
    ["<S>", "They", "can't", "</S>", "trust", "</S>"],
    ["</S>"],
    ["<S>", "<S>"],
    ["a", "<s>", "<S", "S>", "</S >", "<S>", "b"],  # near misses are ordinary words
]


def test_mark_tokens_are_the_sentence_marks():
    assert word_to_ids("<S>").tolist() == R.char_ids("<S>") == R.char_ids(256)
    assert word_to_ids("</S>").tolist() == R.char_ids("</S>") == R.char_ids(257)
    # the byte reading these tokens had before: 5 and 6 bytes between the word marks
    assert word_to_ids("<S>").tolist() != [259, *(b + 1 for b in b"<S>"), 260] + [261] * 45
    for near in ("<s>", "<S", "S>", " <S>", "<S> ", "</s>", "<S/>"):
        assert word_to_ids(near).tolist() == R.char_ids(near) != R.char_ids(256)
    ids = words_to_ids(["<S>", "x", "</S>"])
    ids[0, 1] = 0  # callers get their own array, never the shared marks
    assert word_to_ids("<S>").tolist() == R.char_ids(256)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), st.sampled_from(["<S>", "</S>", "<S", "</S", "<UNK>", "<s>"])))
def test_character_ids_match_reference_for_any_token(word):
    assert word_to_ids(word).tolist() == R.char_ids(word)


@pytest.mark.parametrize("cache_size", [0, 1000])
def test_literal_marks_in_inference_match_reference(tiny_files, tiny_opts, tiny_arrays, cache_size):
    embedder = Embedder(load_bilm(tiny_files[1], tiny_files[0]), max_batch_tokens=48, cache_size=cache_size)
    if cache_size:
        embedder.warm_cache(["<S>", "</S>", "trust"])
    for _ in range(2):  # the second pass reads the character-CNN vectors from the cache
        for words, got in zip(MARKED, embedder.embed(MARKED)):
            want = R.elmo_layers(tiny_arrays, tiny_opts, words)
            assert got.shape == want.shape
            assert numpy.abs(got - want).max() <= 1e-4
    # the mark tokens' vectors are those of the marks that wrap every sentence
    layer0 = embedder.embed([["<S>", "</S>"]])[0][0]
    marks = R.token_vectors(tiny_arrays, tiny_opts, [256, 257])
    assert numpy.abs(layer0[:, :16] - marks).max() <= 1e-5


def test_literal_marks_in_the_pipeline_match_reference(tiny_nlp, tiny_opts, tiny_arrays):
    from spacy.tokens import Doc

    words = ["<S>", "He", "has", "a", "</S>", "fund"]
    doc = tiny_nlp(Doc(tiny_nlp.vocab, words=words))
    want = R.elmo_layers(tiny_arrays, tiny_opts, words)
    assert numpy.abs(doc._.elmo_data.layers - want).max() <= 1e-4


def test_literal_marks_in_pretraining_match_reference(tiny_files, tiny_opts, tiny_arrays):
    sequences = [["the", "<S>", "cat"], ["</S>", "the"]]
    counts = Counter(w for s in sequences for w in s)
    vocab = Vocab.build(counts, n_sequences=2, size=10, min_count=1)
    batch = tensorize(sequences, vocab, CharIdCache())
    # the LM's inputs: each position's character ids, and the character-CNN vectors the biLM reads
    chars = batch.char_ids[batch.index]
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    with torch.no_grad():
        vectors = bilm.encode_tokens(batch.char_ids)[batch.index].double().numpy()
    for b, seq in enumerate(sequences):
        marked = [256, *seq, 257]
        assert chars[b, : len(marked)].tolist() == [R.char_ids(w) for w in marked]
        want = R.token_vectors(tiny_arrays, tiny_opts, marked)
        assert numpy.abs(vectors[b, : len(marked)] - want).max() <= 1e-5
    # the targets: a literal mark is the mark's word id, as in bilm-tf's Vocabulary
    assert batch.word_ids[0, :5].tolist() == [vocab.bos, *vocab.ids(["the"]), vocab.bos, *vocab.ids(["cat"]), vocab.eos]
    assert batch.word_ids[1, :4].tolist() == [vocab.bos, vocab.eos, *vocab.ids(["the"]), vocab.eos]
    # and the unigram counts count them as marks, not as unknown words
    assert "<S>" not in vocab.tokens[3:] and vocab.counts[vocab.bos] == 3 and vocab.counts[vocab.eos] == 3
    assert vocab.counts[vocab.unk] == 0 and sum(vocab.counts) == sum(counts.values()) + 2 * 2
