"""The biLM against the independent float64 numpy maths in reference_math.py, on published-layout files."""
import numpy
import pytest
import torch

import reference_math as R
from spacy_elmo.bilm import Embedder
from spacy_elmo.bilm.characters import BOS_IDS, EOS_IDS, word_to_ids
from spacy_elmo.io import load_bilm

SENTENCES = [
    ["They", "can't", "trust", "their", "friends", "."],
    ["He", "has", "a", "trust", "fund", "."] * 4,
    ["Zürich", "😀", "x" * 200, "\ud800", "é" * 30],
    ["a"],
]


@pytest.mark.parametrize(
    "word",
    ["a", "Hello", "Zürich", "😀", "x" * 200, "é" * 30, "\ud800", "a\ud800b", "", " ", "\n", "日本語" * 10],
)
def test_character_ids_match_published_scheme(word):
    assert word_to_ids(word).tolist() == R.char_ids(word)


def test_sentence_marks():
    assert BOS_IDS.tolist() == R.char_ids(256)
    assert EOS_IDS.tolist() == R.char_ids(257)


def test_tiny_matches_reference_maths(tiny_files, tiny_opts, tiny_arrays):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    R.CLIPS.update(cell=0, proj=0)
    outputs = Embedder(bilm, max_batch_tokens=64).embed(SENTENCES)
    for words, got in zip(SENTENCES, outputs):
        want = R.elmo_layers(tiny_arrays, tiny_opts, words)
        assert got.shape == want.shape == (3, len(words), 32)
        assert numpy.abs(got - want).max() <= 1e-4
    # the test weights must reach both clips, or they would test nothing
    assert R.CLIPS["cell"] > 0 and R.CLIPS["proj"] > 0


def test_small_published_shapes_and_maths(tmp_path):
    """The full `small` options (1024 cells, 128 projection, 1 highway, 2048 filters) load and compute."""
    opts = R.options_dict(1024, 128, 1, [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]], 16)
    arrays = R.random_published_arrays(opts, seed=1)
    options, weights = R.write_published(tmp_path, opts, arrays)
    bilm = load_bilm(weights, options)
    n_params = sum(p.numel() for p in bilm.parameters())
    assert n_params == sum(a.size for a in arrays.values()) + 16  # every stored weight, plus the padding row
    assert round(n_params / 1e6, 1) == 13.6  # the published size of `small`
    words = ["ELMo", "gives", "deep", "contextual", "vectors", "."]
    got = Embedder(bilm).embed([words])[0]
    want = R.elmo_layers(arrays, opts, words)
    assert got.shape == (3, 6, 256)
    assert numpy.abs(got - want).max() <= 1e-4


def test_outputs_do_not_depend_on_batch_mates_or_earlier_calls(tiny_files):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    embedder = Embedder(bilm, max_batch_tokens=10_000)
    alone = embedder.embed([SENTENCES[0]])[0]
    together = embedder.embed(SENTENCES[::-1])[-1]
    again = embedder.embed([SENTENCES[0]])[0]
    assert numpy.abs(alone - together).max() <= 4e-6  # float32 rounding of products of other shapes
    assert numpy.array_equal(alone, again)


def test_cache_is_exact(tiny_files):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    cached = Embedder(bilm, cache_size=8).embed(SENTENCES)  # smaller than the vocabulary: it must refill
    uncached = Embedder(bilm, cache_size=0).embed(SENTENCES)
    for a, b in zip(cached, uncached):
        assert numpy.abs(a - b).max() <= 1e-6


def test_warmed_cache_is_exact_and_bounded(tiny_files):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    cold = Embedder(bilm, cache_size=0).embed(SENTENCES)
    words = [w for sentence in SENTENCES for w in sentence]
    embedder = Embedder(bilm, cache_size=10)
    embedder.warm_cache(words)
    assert list(embedder.cache.slots) == list(dict.fromkeys(words))[:10]  # as many as there is room for
    for a, b in zip(embedder.embed(SENTENCES), cold):
        assert numpy.abs(a - b).max() <= 1e-6


def test_batch_layers_is_differentiable(tiny_files):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    layers, lengths = Embedder(bilm).batch_layers(SENTENCES[:2])
    assert lengths.tolist() == [6, 24]
    layers.sum().backward()
    assert bilm.lstm.layers[1].weight_hh.grad.abs().sum() > 0
    assert bilm.token_encoder.embedding.weight.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tiny_files):
    cpu = Embedder(load_bilm(tiny_files[1], tiny_files[0])).embed(SENTENCES)
    gpu = Embedder(load_bilm(tiny_files[1], tiny_files[0]).cuda()).embed(SENTENCES)
    for a, b in zip(cpu, gpu):
        assert numpy.abs(a - b).max() <= 1e-4


@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_copies_and_pickles_after_inference(tiny_files, precision):
    """Inference keeps oneDNN-packed weight copies, which torch cannot copy: copies start without them."""
    import copy
    import pickle

    bilm = load_bilm(tiny_files[1], tiny_files[0])
    before = Embedder(bilm, precision=precision).embed(SENTENCES[:2])
    for clone in (copy.deepcopy(bilm), pickle.loads(pickle.dumps(bilm))):
        for a, b in zip(Embedder(clone, precision=precision).embed(SENTENCES[:2]), before):
            assert numpy.array_equal(a, b)


def test_distinct_token_input_products_change_nothing(tiny_files):
    """Token ids let inference compute layer 0's input products once per distinct token (both directions)."""
    bilm = load_bilm(tiny_files[1], tiny_files[0]).eval()
    rng = numpy.random.default_rng(0)
    lengths = torch.tensor([40, 3, 25, 40, 1, 17])
    types = torch.from_numpy(rng.integers(0, 6, size=(6, 40)))  # few distinct tokens: many repeats per chunk
    vectors = torch.from_numpy(rng.normal(size=(6, bilm.options.lstm.projection_dim)).astype(numpy.float32))
    with torch.no_grad():
        plain = bilm.contextualize(vectors[types], lengths)
        distinct = bilm.contextualize(vectors[types], lengths, types)
    # the paths differ only in rounding (the plain one stacks [x; h] into one product with a sigmoid post-op);
    # a wrong row in the gather would move the outputs by tenths
    assert torch.abs(plain - distinct).max() <= 1e-5
    assert torch.abs(plain[1:]).max() > 0.1
