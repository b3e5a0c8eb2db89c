"""The speed paths (the CPU kernels: cropped one-multiply char CNN, in-place LSTM; "fast" mode) and the
plain forwards against the independent float64 maths of reference_math.py, and the guards around them."""
from contextlib import contextmanager, nullcontext

import numpy
import pytest
import torch

import reference_math as R
from spacy_elmo.bilm import Embedder, cpu_kernels
from spacy_elmo.bilm.characters import BOS_IDS, EOS_IDS, words_to_ids
from spacy_elmo.bilm.precision import ieee_fp32, precision
from spacy_elmo.io import load_bilm

FULL_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
# every token length the crop can meet: empty, short, around the 44-start limit of the widest filter, cut at 48
WORDS = ["", "a", "to", "Zürich", "😀😀", "x" * 40, "y" * 42, "z" * 43, "w" * 44, "v" * 45, "u" * 47, "t" * 48,
         "s" * 200, "mid-sized", "\ud800"]
SENTENCES = [
    ["They", "can't", "trust", "their", "friends", "."],
    ["He", "has", "a", "trust", "fund", "."] * 5,
    ["Zürich", "😀", "x" * 200, "é" * 30],
    ["a"],
]
ROUTES = {"kernels": nullcontext, "plain": cpu_kernels.disabled}


@pytest.fixture
def route_check(monkeypatch):
    """``route_check(route, mode)``: a context in which the biLM must run on ``route`` (the CPU kernels, or
    the plain forwards) and does, checked by counting the kernels' calls. Fast mode on the kernels needs
    oneDNN's bfloat16 products: where the CPU lacks them the case is skipped, not run on the plain route."""
    calls = []
    for name in ("encode_tokens", "bilstm_layer"):
        kernel = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name, lambda *a, _k=kernel, **kw: calls.append(1) or _k(*a, **kw))

    @contextmanager
    def check(route, mode="exact"):
        if route == "kernels" and mode == "fast" and not cpu_kernels.BFLOAT16:
            pytest.skip("this CPU lacks oneDNN bfloat16 products (AVX-512 BF16 or AVX-NE-CONVERT): fast mode's "
                        "kernels cannot run here")
        calls.clear()
        with ROUTES[route]():
            yield
        assert bool(calls) == (route == "kernels"), f"asked for the {route} route, ran {len(calls)} kernel calls"

    return check


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    opts = R.options_dict(1024, 128, 1, FULL_FILTERS, 16)
    arrays = R.random_published_arrays(opts, seed=3)
    options, weights = R.write_published(tmp_path_factory.mktemp("small"), opts, arrays)
    return opts, arrays, load_bilm(weights, options).eval()


@pytest.fixture
def tiny(tiny_files, tiny_opts, tiny_arrays):
    return tiny_opts, tiny_arrays, load_bilm(tiny_files[1], tiny_files[0]).eval()


def _char_ids(words):
    ids = torch.from_numpy(words_to_ids(words))
    return torch.cat([ids, torch.from_numpy(numpy.stack([BOS_IDS, EOS_IDS]))])


def _max_diff(outputs, opts, arrays, sentences):
    return max(numpy.abs(got - R.elmo_layers(arrays, opts, words)).max() for got, words in zip(outputs, sentences))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_char_cnn_is_exact(size, route, request, route_check):
    opts, arrays, bilm = request.getfixturevalue(size)
    want = R.token_vectors(arrays, opts, WORDS + [256, 257])
    with torch.no_grad(), route_check(route):
        got = bilm.encode_tokens(_char_ids(WORDS)).numpy()
    assert numpy.abs(got - want).max() <= 1e-4


def test_char_cnn_chunks_and_order(tiny, monkeypatch):
    """Many chunks of mixed lengths give each token its own vector, in the input order."""
    opts, arrays, bilm = tiny
    monkeypatch.setattr(cpu_kernels, "CHUNK_WINDOWS", 40)
    words = [w for i in range(6) for w in (WORDS[::-1] if i % 2 else WORDS)]
    with torch.no_grad():
        got = bilm.encode_tokens(_char_ids(words)).numpy()
    assert numpy.abs(got - R.token_vectors(arrays, opts, words + [256, 257])).max() <= 1e-4


def test_padded_token_positions_match_the_convolution(tiny):
    """Rows of id 0 (padded positions of BiLM.forward) give on the kernels what the plain convolution gives."""
    _, _, bilm = tiny
    ids = torch.zeros(3, 50, dtype=torch.long)
    with torch.no_grad():
        with cpu_kernels.disabled():
            want = bilm.encode_tokens(ids)
        got = bilm.encode_tokens(ids)
    assert len(bilm.token_encoder.kernel_weights) > 0  # the second call ran on the kernels
    assert torch.abs(want).max() > 0.1 and torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_exact_mode_matches_float64_maths(size, route, request, route_check):
    opts, arrays, bilm = request.getfixturevalue(size)
    R.CLIPS.update(cell=0, proj=0)
    with route_check(route):
        outputs = Embedder(bilm, max_batch_tokens=64).embed(SENTENCES)
    assert _max_diff(outputs, opts, arrays, SENTENCES) <= 1e-4
    assert R.CLIPS["cell"] > 0 and R.CLIPS["proj"] > 0  # the clips are exercised


def test_training_path_is_exact_and_differentiable(tiny):
    opts, arrays, bilm = tiny
    embedder = Embedder(bilm, precision="fast")  # fast is inference only: with gradients it is exact
    layers, lengths = embedder.batch_layers(SENTENCES)
    assert layers.requires_grad
    got = [layers[:, b, : int(n)].detach().numpy() for b, n in enumerate(lengths)]
    assert _max_diff(got, opts, arrays, SENTENCES) <= 1e-4
    layers.sum().backward()
    conv_grad = bilm.token_encoder.convs[-1].weight.grad
    assert conv_grad is not None and torch.isfinite(conv_grad).all() and conv_grad.abs().sum() > 0
    assert bilm.lstm.layers[0].weight_hh.grad.abs().sum() > 0


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_fast_mode_drift_is_bounded(size, route, request, route_check):
    """bfloat16 products (on the plain route, autocast): measurably different from the float64 maths, but
    close: the bounds are about a third above the drift ``benchmarks/exactness.py`` measures."""
    opts, arrays, bilm = request.getfixturevalue(size)
    want = numpy.concatenate([R.elmo_layers(arrays, opts, words) for words in SENTENCES], 1)
    with route_check(route, "fast"):
        fast = numpy.concatenate(Embedder(bilm, precision="fast").embed(SENTENCES), 1)
    diff, largest = numpy.abs(fast - want), numpy.abs(want).max()
    assert diff.max() > 1e-3  # it really runs in bfloat16
    assert diff.max() <= 0.03 * largest
    assert diff.mean() <= 0.002 * largest
    cosine = (fast * want).sum(-1) / (numpy.linalg.norm(fast, axis=-1) * numpy.linalg.norm(want, axis=-1))
    assert cosine.min() >= 0.999


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_outputs_do_not_depend_on_batch_mates(tiny, mode):
    _, _, bilm = tiny
    together = Embedder(bilm, max_batch_tokens=4096, precision=mode).embed(SENTENCES)
    alone = [Embedder(bilm, max_batch_tokens=4096, precision=mode).embed([s])[0] for s in SENTENCES]
    for a, b in zip(together, alone):
        assert numpy.abs(a - b).max() <= 1e-5


def test_token_cache_does_not_mix_modes(tiny):
    opts, arrays, bilm = tiny
    embedder = Embedder(bilm)
    exact = embedder.embed(SENTENCES)
    embedder.precision = "fast"
    embedder.embed(SENTENCES)  # fills the cache with bfloat16-computed vectors
    embedder.precision = "exact"
    again = embedder.embed(SENTENCES)
    assert all(numpy.array_equal(a, b) for a, b in zip(exact, again))


def test_exact_mode_ignores_low_precision_settings(tiny):
    """Global settings that allow bfloat16 float32 products (real on AMX CPUs) are overridden, then restored."""
    opts, arrays, bilm = tiny
    saved = torch.get_float32_matmul_precision(), torch.backends.mkldnn.matmul.fp32_precision
    try:
        torch.set_float32_matmul_precision("medium")
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        with ieee_fp32():
            assert torch.backends.mkldnn.matmul.fp32_precision == "ieee"
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
        assert _max_diff(Embedder(bilm).embed(SENTENCES), opts, arrays, SENTENCES) <= 1e-4
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.mkldnn.matmul.fp32_precision = saved[1]


def test_updated_weights_are_used(tiny, tmp_path):
    """Inference copies of the weights follow in-place updates (an optimizer step): exact mode gives the
    float64 maths of the new weights, fast mode what a biLM loaded fresh with them gives in fast mode (a
    bound far below both fast mode's own drift and the difference a stale copy makes)."""
    opts, arrays, bilm = tiny
    for mode in ("exact", "fast"):
        Embedder(bilm, precision=mode).embed(SENTENCES)  # builds the inference copies
    with torch.no_grad():
        bilm.lstm.layers[1].weight_hh.mul_(0.5)
        bilm.token_encoder.convs[0].weight.mul_(0.5)
    arrays = dict(arrays)
    for d in range(2):
        w = arrays[f"RNN_{d}/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"].copy()
        w[opts["lstm"]["projection_dim"] :] *= 0.5
        arrays[f"RNN_{d}/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"] = w
    arrays["CNN/W_cnn_0"] = arrays["CNN/W_cnn_0"] * 0.5
    assert _max_diff(Embedder(bilm).embed(SENTENCES), opts, arrays, SENTENCES) <= 1e-4
    fresh = load_bilm(*reversed(R.write_published(tmp_path, opts, arrays))).eval()
    fast = Embedder(bilm, precision="fast").embed(SENTENCES)
    for got, want in zip(fast, Embedder(fresh, precision="fast").embed(SENTENCES)):
        assert numpy.abs(got - want).max() <= 1e-5


def test_unknown_precision_is_refused(tiny):
    with pytest.raises(ValueError, match="precision"):
        Embedder(tiny[2], precision="half")
    with pytest.raises(ValueError, match="precision"):
        with precision("turbo"):
            pass


def test_directions_in_threads_match_one_thread(tiny):
    """With 2 torch threads the directions run in two threads at once; the count is restored after."""
    _, _, bilm = tiny
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = Embedder(bilm).embed(SENTENCES)
        torch.set_num_threads(2)
        together = Embedder(bilm).embed(SENTENCES)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(alone, together):
        assert numpy.abs(a - b).max() <= 1e-5
