"""The character CNN reads only the columns it needs (``crop_groups``) and still gives the published
maths: against the float64 reference, against finite differences, and against the full 50 columns."""
import numpy
import pytest
import torch
from hypothesis import given, strategies as st

import fuzzing
import reference_math as R
from spacy_elmo.bilm import cpu_kernels
from spacy_elmo.bilm.characters import MAX_CHARS, words_to_ids
from spacy_elmo.bilm.token_encoder import CROP_STEP, crop_groups
from spacy_elmo.io import load_bilm

WORDS = ["a", "Hello", "x" * 60, "Zürich", "é" * 12, "😀", "", "http://t.co/abc", "ok" * 9]
WORD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(WORDS)


def char_ids(words, zero_rows: int = 0) -> torch.Tensor:
    ids = torch.from_numpy(words_to_ids(words))
    return torch.cat([ids, torch.zeros(zero_rows, MAX_CHARS, dtype=ids.dtype)])  # zero rows: padded positions


@fuzzing.PROFILES
def test_groups_cover_every_row_once_with_enough_columns(profile):
    @given(st.lists(WORD, min_size=1, max_size=30), st.integers(0, 3), st.integers(1, 8))
    def check(words, zero_rows, widest):
        ids = char_ids(words, zero_rows)
        groups = crop_groups(ids, widest)
        rows = torch.cat([r for r, _ in groups]).tolist()
        assert sorted(rows) == list(range(len(ids)))
        for group_rows, columns in groups:
            assert columns == MAX_CHARS or columns % CROP_STEP == 0
            for row in group_rows.tolist():
                # the columns reach the first window of the widest filter that holds only padding
                end = max([i + 1 for i, c in enumerate(ids[row].tolist()) if c not in (0, R.char_ids("")[-1])],
                          default=0)
                assert columns >= min(MAX_CHARS, end + widest)

    fuzzing.run(profile, 40, check)


@fuzzing.PROFILES
def test_training_route_matches_reference_maths(tiny_files, tiny_opts, tiny_arrays, profile):
    bilm = load_bilm(tiny_files[1], tiny_files[0])  # parameters require grad: the route pretraining takes

    @given(st.lists(WORD, min_size=1, max_size=12))
    def check(words):
        with cpu_kernels.disabled():
            got = bilm.encode_tokens(char_ids(words)).detach().double().numpy()
        assert numpy.abs(got - R.token_vectors(tiny_arrays, tiny_opts, words)).max() <= 1e-4

    fuzzing.run(profile, 20, check)


@pytest.fixture
def encoder64(tiny_files):
    return load_bilm(tiny_files[1], tiny_files[0]).double().token_encoder


def test_cropped_gradients_match_finite_differences(encoder64):
    torch.set_num_threads(1)  # thousands of tiny forwards: threads only wait on each other (conftest restores it)
    ids = char_ids(["a", "Hello", "x" * 60, "é" * 5], zero_rows=1)
    assert len(crop_groups(ids, encoder64.widest)) > 1  # the test must crop, in several groups
    name = f"convs.{len(encoder64.convs) - 1}.weight"
    params = dict(encoder64.named_parameters())
    padding_row = params["embedding.weight"][:1].detach()  # id 0 takes no gradient (padding_idx), by design

    def vectors(conv: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        weights = {name: conv, "embedding.weight": torch.cat([padding_row, embedding])}
        with cpu_kernels.disabled():
            return torch.func.functional_call(encoder64, weights, (ids,))

    inputs = (params[name], params["embedding.weight"][1:])
    assert torch.autograd.gradcheck(vectors, tuple(p.detach().clone().requires_grad_() for p in inputs))


def test_cropped_gradients_equal_those_over_all_columns(encoder64):
    ids = char_ids(WORDS, zero_rows=2)
    params = list(encoder64.parameters())
    probe = torch.randn(len(ids), encoder64.projection.out_features, dtype=torch.float64)
    with cpu_kernels.disabled():
        cropped = torch.autograd.grad((encoder64(ids) * probe).sum(), params)
    full = torch.autograd.grad((encoder64.encode(ids) * probe).sum(), params)  # all 50 columns, uncropped
    for a, b in zip(cropped, full):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
