"""The fixed-shape step loop behind ``cuda_graphs()`` (the LSTM's CUDA-graph switch, off by default): on the CPU
it runs as it is, so its maths is checked here against the plain loop and the float64 maths; the capture and
replay themselves need CUDA."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_math as R
from spacy_elmo.bilm import Embedder, cpu_kernels
from spacy_elmo.bilm.lstm import GRAPH_TOKENS, cuda_graphs
from spacy_elmo.io import load_bilm

WORDS = ["The", "cat", "sat", "on", "the", "mat", ".", "Émile", "ran", "ahead", "!", "and", "stopped"]


def sentences_of(lengths):
    return [[WORDS[(i + k) % len(WORDS)] for k in range(n)] for i, n in enumerate(lengths)]


def embed(bilm, sentences, graphs: bool, precision: str = "exact"):
    with cpu_kernels.disabled(), cuda_graphs(graphs):  # the plain path, as CUDA runs it
        return Embedder(bilm, max_batch_tokens=128, cache_size=0, precision=precision).embed(sentences)


def test_the_switch_is_off_by_default_and_scoped():
    from spacy_elmo.bilm.lstm import _GRAPHS

    assert _GRAPHS.get() is False
    with cuda_graphs():
        assert _GRAPHS.get() is True
        with cuda_graphs(False):
            assert _GRAPHS.get() is False
    assert _GRAPHS.get() is False


def test_fixed_shape_loop_matches_the_float64_maths(tiny_files, tiny_opts, tiny_arrays):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    sentences = sentences_of([5, 1, 9, 3, 12])
    R.CLIPS.update(cell=0, proj=0)
    for words, got in zip(sentences, embed(bilm, sentences, graphs=True)):
        assert numpy.abs(got - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4
    assert R.CLIPS["cell"] > 0 and R.CLIPS["proj"] > 0  # both clips were reached


@settings(max_examples=12, deadline=None)
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=12), precision=st.sampled_from(["exact", "fast"]))
def test_fixed_shape_loop_matches_the_plain_loop(tiny_files, lengths, precision):
    """Rows that have ended keep stepping, masked: nothing they compute may reach a running row, in float32
    and under bfloat16 autocast (the casts are autocast's own)."""
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    sentences = sentences_of(lengths)
    plain, fixed = embed(bilm, sentences, False, precision), embed(bilm, sentences, True, precision)
    for a, b in zip(plain, fixed):
        assert a.shape == b.shape
        assert numpy.abs(a - b).max() <= 1e-5  # GEMMs of other row counts


def test_the_layer_keeps_its_contract_zero_past_each_row_end(tiny_files):
    """The layer on its own (no mask after it): outputs past a row's end are zero, as the plain loop's."""
    layer = load_bilm(tiny_files[1], tiny_files[0]).lstm.layers[0]
    lengths = [7, 4, 4, 1]
    x = torch.randn(2, len(lengths), 7, layer.weight_hh.shape[1], generator=torch.Generator().manual_seed(0))
    batch_sizes = [sum(n > t for n in lengths) for t in range(7)]
    with torch.no_grad(), cpu_kernels.disabled():
        plain = layer(x, batch_sizes)
        with cuda_graphs():
            fixed = layer(x, batch_sizes)
    for row, n in enumerate(lengths):
        assert bool((fixed[:, row, n:] == 0).all()) and bool((fixed[:, row, :n] != 0).any())
    assert torch.allclose(plain, fixed, atol=1e-6, rtol=0)


def test_fixed_shape_loop_trains_like_the_plain_loop(tiny_files):
    """With gradients on, the switch keeps the fixed-shape loop uncaptured: the same gradients."""
    sentences = sentences_of([4, 7, 2])
    grads = []
    for graphs in (False, True):
        bilm = load_bilm(tiny_files[1], tiny_files[0]).train()
        with cpu_kernels.disabled(), cuda_graphs(graphs):
            layers, _ = Embedder(bilm, cache_size=0).batch_layers(sentences)
        (layers ** 2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in bilm.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_cuda_graphs_match_the_plain_loop_on_cuda(tiny_files, precision):
    bilm = load_bilm(tiny_files[1], tiny_files[0]).cuda().eval()
    batches = [sentences_of(lengths) for lengths in ([5, 1, 9], [3, 3], [5, 1, 9], [30] * 4)]
    for sentences in batches:  # the third reuses the first one's graph
        plain = Embedder(bilm, cache_size=0, precision=precision).embed(sentences)
        with cuda_graphs():
            fixed = Embedder(bilm, cache_size=0, precision=precision).embed(sentences)
        for a, b in zip(plain, fixed):
            assert numpy.abs(a - b).max() <= (1e-5 if precision == "exact" else 1e-2)
    # padded (steps, rows): (16, 8), (8, 8), (32, 8): three graphs, in the one area of this precision's dtype
    assert GRAPH_TOKENS >= 32 * 8
    areas = bilm.lstm.layers[0].__dict__["_graph_areas"]
    assert [sorted(area.graphs) for area in areas.values()] == [[(8, 8), (16, 8), (32, 8)]]
