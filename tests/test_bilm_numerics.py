"""The biLM against the independent float64 numpy maths in reference_math.py, on published-layout files,
on both routes: the CPU kernels and the plain forwards (what CUDA and training run)."""
from contextlib import nullcontext

import numpy
import pytest
import torch

import reference_math as R
from spacy_elmo.bilm import Embedder, cpu_kernels
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


ROUTES = {"kernels": nullcontext, "plain": cpu_kernels.disabled}


def kernel_copies(bilm) -> int:
    """How many weight copies the CPU kernels have made for ``bilm``: zero unless they ran."""
    return len(bilm.token_encoder.kernel_weights) + sum(len(layer.kernel_weights) for layer in bilm.lstm.layers)


@pytest.mark.parametrize("route", ROUTES)
def test_tiny_matches_reference_maths(tiny_files, tiny_opts, tiny_arrays, route):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    R.CLIPS.update(cell=0, proj=0)
    with ROUTES[route]():
        outputs = Embedder(bilm, max_batch_tokens=64).embed(SENTENCES)
    assert (kernel_copies(bilm) > 0) == (route == "kernels")  # the route asked for is the one that ran
    for words, got in zip(SENTENCES, outputs):
        want = R.elmo_layers(tiny_arrays, tiny_opts, words)
        assert got.shape == want.shape == (3, len(words), 32)
        assert numpy.abs(got - want).max() <= 1e-4
    # the test weights must reach both clips, or they would test nothing
    assert R.CLIPS["cell"] > 0 and R.CLIPS["proj"] > 0


@pytest.mark.parametrize("route", ROUTES)
def test_small_published_shapes_and_maths(tmp_path, route):
    """The full `small` options (1024 cells, 128 projection, 1 highway, 2048 filters) load and compute."""
    opts = R.options_dict(1024, 128, 1, [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]], 16)
    arrays = R.random_published_arrays(opts, seed=1)
    options, weights = R.write_published(tmp_path, opts, arrays)
    bilm = load_bilm(weights, options)
    n_params = sum(p.numel() for p in bilm.parameters())
    assert n_params == sum(a.size for a in arrays.values()) + 16  # every stored weight, plus the padding row
    assert round(n_params / 1e6, 1) == 13.6  # the published size of `small`
    words = ["ELMo", "gives", "deep", "contextual", "vectors", "."]
    with ROUTES[route]():
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
    assert kernel_copies(bilm) == 0  # with autograd the plain forwards run


def test_plain_gradients_match_finite_differences(tiny_files):
    """The plain forwards' gradients, in float64, against central differences (torch.autograd.gradcheck)."""
    bilm = load_bilm(tiny_files[1], tiny_files[0]).double()
    encoder, lstm = bilm.token_encoder, bilm.lstm
    ids = torch.from_numpy(numpy.stack([word_to_ids(w) for w in ["a", "Zürich", "x" * 60, ""]]))

    def encode(conv: torch.Tensor, highway: torch.Tensor) -> torch.Tensor:
        weights = {"convs.2.weight": conv, "highways.0.proj.weight": highway}
        return torch.func.functional_call(encoder, weights, (ids,))

    conv = encoder.convs[2].weight.detach().clone().requires_grad_()
    highway = encoder.highways[0].proj.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(encode, (conv, highway), fast_mode=True)

    def contextualize(tokens: torch.Tensor, weight_hh: torch.Tensor) -> torch.Tensor:
        layers = torch.func.functional_call(lstm, {"layers.1.weight_hh": weight_hh}, (tokens, torch.tensor([5, 2, 4])))
        return torch.stack(layers)

    tokens = torch.randn(3, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    weight_hh = lstm.layers[1].weight_hh.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(contextualize, (tokens, weight_hh), fast_mode=True)


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


# every option value the checks accept, against the float64 maths --------------------------------------------

VARIANTS = {
    "two highways": dict(n_highway=2),
    "tanh": dict(activation="tanh"),
    "no skip connections": dict(skips=False),
    "261 characters": dict(n_characters=261),
    "null clips": dict(clip=None),
    "one layer": dict(n_layers=1),
    "three layers": dict(n_layers=3),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_option_variants_match_reference_maths(tmp_path, variant, route):
    settings = dict(dict(n_highway=1), **VARIANTS[variant])
    opts = R.options_dict(32, 16, settings.pop("n_highway"), R.FILTERS_TINY, 4, **settings)
    arrays = R.random_published_arrays(opts, seed=5)
    options, weights = R.write_published(tmp_path, opts, arrays)
    bilm = load_bilm(weights, options)
    R.CLIPS.update(cell=0, proj=0)
    with ROUTES[route]():
        outputs = Embedder(bilm, max_batch_tokens=64).embed(SENTENCES)
    assert (kernel_copies(bilm) > 0) == (route == "kernels")
    for words, got in zip(SENTENCES, outputs):
        want = R.elmo_layers(arrays, opts, words)
        assert got.shape == want.shape
        assert numpy.abs(got - want).max() <= 1e-4, variant
    if variant == "null clips":  # unclipped values go past where the clips would have cut them
        assert max(numpy.abs(o[1:]).max() for o in outputs) > 3.0
    else:
        assert R.CLIPS["cell"] > 0 and R.CLIPS["proj"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_original_published_shapes_and_maths(tmp_path_factory, route):
    """The full `original` options (4096 cells, 512 projection, 2 highways, 2048 filters): the published
    parameter count and the float64 maths, two highway layers included."""
    opts = R.options_dict(4096, 512, 2, [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]], 16)
    arrays = R.random_published_arrays(opts, seed=2)
    options, weights = R.write_published(tmp_path_factory.mktemp("original"), opts, arrays)
    bilm = load_bilm(weights, options)
    assert round(sum(p.numel() for p in bilm.parameters()) / 1e6, 1) == 93.6
    words = ["ELMo", "gives", "deep", "contextual", "vectors", "."]
    with ROUTES[route]():
        got = Embedder(bilm).embed([words])[0]
    want = R.elmo_layers(arrays, opts, words)
    assert got.shape == (3, 6, 1024)
    assert numpy.abs(got - want).max() <= 1e-4
