"""The task mix (eq. 1 of the ELMo paper) against float64 numpy written here from the formula."""
import numpy
import pytest

from spacy_elmo.layers.scalar_mix import ScalarMix, layer_weights

L, W = 3, 8


def reference_mix(s, gamma, H, layer_norm=False):
    """``gamma * sum_j softmax(s)_j * h_j`` in float64; ``h_j`` normalised per token when asked."""
    H = numpy.asarray(H, dtype=numpy.float64)
    if layer_norm:
        H = (H - H.mean(-1, keepdims=True)) / numpy.sqrt(H.var(-1, keepdims=True) + 1e-12)
    w = numpy.exp(s - numpy.max(s))
    w /= w.sum()
    return gamma * numpy.einsum("l,lnw->nw", w, H)


def make(layer_norm=False, seed=0, **kwargs):
    rng = numpy.random.default_rng(seed)
    model = ScalarMix(L, W, layer_norm=layer_norm, **kwargs)
    model.initialize()
    model.set_param("s", rng.standard_normal(L).astype("f"))
    model.set_param("gamma", numpy.asarray([1.7], dtype="f"))
    X = [rng.standard_normal((L, n, W)).astype("f") for n in (4, 0, 6)]
    return model, X


def test_initial_mix_is_the_uniform_average():
    model = ScalarMix(L, W)
    model.initialize()
    X = [numpy.random.default_rng(1).standard_normal((L, 5, W)).astype("f")]
    Y = model.predict(X)
    numpy.testing.assert_allclose(Y[0], X[0].mean(axis=0), rtol=1e-5, atol=1e-6)
    weights, gamma = layer_weights(model)
    assert weights == pytest.approx([1 / 3] * 3) and gamma == 1.0


@pytest.mark.parametrize("layer_norm", [False, True])
def test_forward_matches_reference(layer_norm):
    model, X = make(layer_norm)
    s, gamma = model.get_param("s").astype("f8"), 1.7
    Y = model.predict(X)
    assert [y.shape for y in Y] == [(4, W), (0, W), (6, W)]
    for x, y in zip(X, Y):
        numpy.testing.assert_allclose(y, reference_mix(s, gamma, x, layer_norm), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_gradients_match_finite_differences(layer_norm):
    """Analytic gradients of ``sum(Y * G)`` wrt s, gamma and every layer value against central differences
    of the float64 reference."""
    model, X = make(layer_norm, seed=3)
    rng = numpy.random.default_rng(4)
    G = [rng.standard_normal((x.shape[1], W)) for x in X]
    s0, g0 = model.get_param("s").astype("f8"), 1.7
    H0 = numpy.concatenate(X, axis=1).astype("f8")
    G_all = numpy.concatenate(G, axis=0)

    def loss(s, gamma, H):
        return float((reference_mix(s, gamma, H, layer_norm) * G_all).sum())

    Y, backprop = model.begin_update(X)
    dX = backprop([g.astype("f") for g in G])
    eps = 1e-6
    ds = [(loss(s0 + eps * e, g0, H0) - loss(s0 - eps * e, g0, H0)) / (2 * eps) for e in numpy.eye(L)]
    numpy.testing.assert_allclose(model.get_grad("s"), ds, rtol=1e-4, atol=1e-4)
    dgamma = (loss(s0, g0 + eps, H0) - loss(s0, g0 - eps, H0)) / (2 * eps)
    numpy.testing.assert_allclose(model.get_grad("gamma"), [dgamma], rtol=1e-4, atol=1e-4)
    dH = numpy.concatenate(dX, axis=1)
    assert [d.shape for d in dX] == [x.shape for x in X]
    for index in [(0, 0, 0), (1, 3, 5), (2, 9, 7), (0, 5, 2)]:
        bump = numpy.zeros_like(H0)
        bump[index] = eps
        numeric = (loss(s0, g0, H0 + bump) - loss(s0, g0, H0 - bump)) / (2 * eps)
        assert dH[index] == pytest.approx(numeric, rel=1e-3, abs=1e-4)


def test_layer_dropout_mixes_only_kept_layers():
    model, X = make(layer_dropout=0.9, seed=5)
    s = model.get_param("s").astype("f8")
    seen = set()
    for _ in range(40):
        model.set_grad("s", numpy.zeros(L, dtype="f"))
        Y, backprop = model.begin_update(X[:1])
        backprop([numpy.ones_like(Y[0])])
        # the output is the reference mix over some non-empty subset of the layers
        matches = []
        for mask in range(1, 2**L):
            kept = [j for j in range(L) if mask >> j & 1]
            ref = reference_mix(s[kept], 1.7, X[0][kept])
            if numpy.allclose(Y[0], ref, rtol=1e-4, atol=1e-4):
                matches.append(kept)
        assert matches, "output is no mix of a subset of layers"
        kept = matches[0]
        dropped = [j for j in range(L) if j not in kept]
        assert numpy.all(model.get_grad("s")[dropped] == 0)
        seen.add(tuple(kept))
    assert len(seen) > 1
    numpy.testing.assert_allclose(model.predict(X[:1])[0], reference_mix(s, 1.7, X[0]), rtol=1e-5, atol=1e-5)


def test_output_dropout_only_in_training():
    model, X = make(dropout=0.5, seed=6)
    expected = model.predict(X)[2]
    Y, _ = model.begin_update(X)
    zeros = Y[2] == 0
    assert 0.2 < zeros.mean() < 0.8
    numpy.testing.assert_allclose(Y[2][~zeros], 2 * expected[~zeros], rtol=1e-5)


def test_dropout_rates_are_not_overridden_by_spacy_training_dropout():
    from thinc.api import set_dropout_rate

    model = ScalarMix(L, W, dropout=0.25, layer_dropout=0.5)
    set_dropout_rate(model, 0.1)
    assert model.attrs["output_dropout"] == 0.25 and model.attrs["layer_dropout"] == 0.5


def test_bad_shapes_and_rates_are_named():
    model, X = make()
    with pytest.raises(ValueError, match=r"\[3, n_tokens, 8\].*\[2, 4, 8\]"):
        model.predict([X[0][:2]])
    with pytest.raises(ValueError, match="layer_dropout"):
        ScalarMix(L, W, layer_dropout=1.0)
    with pytest.raises(ValueError, match="dropout"):
        ScalarMix(L, W, dropout=-0.1)
