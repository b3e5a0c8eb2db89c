"""Flat memory over long varied streams: the CPU kernels run their products on a few bucketed row counts
(oneDNN keeps a compiled primitive per distinct shape), and the padding they add changes no number."""
import random

import numpy
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import reference_math as R
from spacy_elmo.bilm import Embedder, cpu_kernels
from spacy_elmo.io import load_bilm

WORDS = ["a", "to", "the", "Zürich", "😀", "trust", "friends", "can't", "x" * 30, "mid-sized", "#tag", "@user", "."]

pytestmark = pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="torch without oneDNN: the plain forwards run")


@given(st.integers(min_value=0, max_value=1 << 20))
def test_rows_bucket_covers_n_with_little_padding(n):
    b = cpu_kernels.rows_bucket(n)
    assert n <= b <= max(n, 8) * 1.25
    assert cpu_kernels.rows_bucket(b) == b  # a bucket is its own bucket
    assert cpu_kernels.rows_bucket(n + 1) >= b  # monotone


def test_few_buckets_per_doubling():
    assert len({cpu_kernels.rows_bucket(n) for n in range(1, 4097)}) <= 45


def _stream(n_batches, seed=0):
    """Varied batches: 1 to 40 sentences of 1 to 30 words drawn from a vocabulary of made-up words."""
    rng = random.Random(seed)
    for _ in range(n_batches):
        yield [[f"{rng.choice(WORDS)}{rng.randrange(10_000)}" for _ in range(rng.randint(1, 30))]
               for _ in range(rng.randint(1, 40))]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_kernels_see_a_bounded_set_of_shapes_over_a_long_varied_stream(tiny_files, monkeypatch, mode):
    """Each distinct product shape costs oneDNN a cached primitive: over 60 varied batches the kernels
    must meet only bucketed row counts, a few dozen per weight, whatever the lengths."""
    if mode == "fast" and not cpu_kernels.BFLOAT16:
        pytest.skip("no oneDNN bfloat16 products on this CPU: fast mode runs the plain forwards")
    shapes = set()
    real = cpu_kernels.linear

    def spy(x, weight, bias=None, sigmoid=False):
        shapes.add((x.shape[0], tuple(weight.shape), sigmoid))
        return real(x, weight, bias, sigmoid)

    monkeypatch.setattr(cpu_kernels, "linear", spy)
    embedder = Embedder(load_bilm(tiny_files[1], tiny_files[0]).eval(), max_batch_tokens=2048, cache_size=0,
                        precision=mode)
    for batch in _stream(60):
        embedder.embed(batch)
    rows = {r for r, _, _ in shapes}
    assert all(cpu_kernels.rows_bucket(r) == r for r in rows), sorted(rows)
    weights = {(w, s) for _, w, s in shapes}
    assert len(shapes) <= 45 * len(weights), len(shapes)


def test_padded_products_give_the_published_numbers(tiny_files, tiny_opts, tiny_arrays):
    """Batches whose row counts fall between buckets (9 to 23 sentences, tokens past a block) pad every
    product; each sentence still matches the float64 maths and its numbers alone."""
    bilm = load_bilm(tiny_files[1], tiny_files[0]).eval()
    rng = random.Random(1)
    sentences = [[rng.choice(WORDS) + str(i) for i in range(rng.randint(1, 40))] for _ in range(23)]
    together = Embedder(bilm, max_batch_tokens=100_000, cache_size=0).embed(sentences)
    for words, got in zip(sentences, together):
        want = R.elmo_layers(tiny_arrays, tiny_opts, words)
        assert numpy.abs(got - want).max() <= 1e-5
        alone = Embedder(bilm, cache_size=0).embed([words])[0]
        assert numpy.abs(got - alone).max() <= 4e-6


def test_token_blocks_match_one_product(tiny_files, monkeypatch):
    """Highway and projection run in blocks of TOKEN_BLOCK tokens, the last one padded: the vectors are
    those of the plain forward over all tokens at once."""
    bilm = load_bilm(tiny_files[1], tiny_files[0]).eval()
    monkeypatch.setattr(cpu_kernels, "TOKEN_BLOCK", 11)  # blocks of 11 rows run as 12
    ids = torch.randint(1, 262, (45, 50))
    ids[:, 20:] = 261  # padding (id 260 + 1) after 20 characters
    with torch.no_grad():
        blocked = bilm.encode_tokens(ids)
        with cpu_kernels.disabled():
            plain = bilm.encode_tokens(ids)
    assert torch.allclose(blocked, plain, atol=1e-5)


def test_the_heap_is_trimmed_every_few_batches_of_a_long_run(tiny_files):
    """A long run hands its freed batches back to the system (bilm/heap.py): the embedder counts its batches and
    trims every TRIM_EVERY of them, on glibc."""
    import sys

    from spacy_elmo.bilm import heap
    from spacy_elmo.bilm.embedder import Embedder
    from spacy_elmo.io import load_bilm

    embedder = Embedder(load_bilm(tiny_files[1], tiny_files[0]), max_batch_tokens=16)
    sentences = [["a", "b", "c"] * (1 + i % 3) for i in range(3 * heap.TRIM_EVERY)]
    embedder.embed(sentences)
    assert embedder.heap.batches >= 3 * heap.TRIM_EVERY // 3
    if sys.platform.startswith("linux") and heap._malloc_trim is not None:
        assert embedder.heap.trims == embedder.heap.batches // heap.TRIM_EVERY > 0
