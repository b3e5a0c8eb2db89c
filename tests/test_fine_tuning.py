"""Fine-tuning (``frozen = false``): the gradients that reach the biLM through its listeners are those of the
independent float64 maths (central differences of reference_math), the gradients of several listeners summed."""
import numpy
import pytest
import spacy
from spacy.training import Example

import reference_math as R
from spacy_elmo.layers.listener import ElmoListener
from spacy_elmo.layers.scalar_mix import layer_weights

TEXTS = ["They can't trust their friends .", "He has a trust fund", "ELMo"]
# published arrays and the biLM parameter each is (its view in the parameter, the direction's index)
ARRAYS = {
    "CNN_proj/W_proj": ("token_encoder.projection.weight", lambda g: g.T),
    "char_embed": ("token_encoder.embedding.weight", lambda g: g[1:]),
    "CNN/W_cnn_1": ("token_encoder.convs.1.weight", lambda g: g.transpose(2, 1, 0)[None]),
    "RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0": ("lstm.layers.1.weight_proj", lambda g: g[0]),
    "RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/B": ("lstm.layers.0.bias", lambda g: g[1]),
}


def loss_of(arrays, opts, words_of_docs, mixes, targets) -> float:
    """sum over listeners and Docs of <the listener's mix of the float64 layers, its target>."""
    total = 0.0
    for (weights, gamma), doc_targets in zip(mixes, targets):
        for words, target in zip(words_of_docs, doc_targets):
            layers = R.elmo_layers(arrays, opts, words)
            total += float((gamma * numpy.einsum("l,lnw->nw", weights, layers) * target).sum())
    return total


@pytest.fixture
def tuned(tiny_files):
    """An ``elmo`` to fine-tune with two listeners of different mixes, and Docs."""
    options, weights = tiny_files
    nlp = spacy.blank("en")
    elmo = nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                        "model": {"frozen": False, "doc_cache_size": 0}})
    listeners = []
    for name, s in (("a", [0.5, -1.0, 2.0]), ("b", [-0.3, 1.2, 0.1])):
        listener = ElmoListener(width=32, upstream="elmo")
        listener.initialize()
        listener.layers[0].set_param("s", numpy.asarray(s, dtype="f"))
        listener.layers[0].set_param("gamma", numpy.asarray([1.5 if name == "a" else 0.7], dtype="f"))
        elmo.add_listener(listener, name)
        listeners.append(listener)
    docs = [nlp.make_doc(text) for text in TEXTS]
    return elmo, listeners, docs


def test_two_listeners_gradients_are_summed_and_match_central_differences(tuned, tiny_opts, tiny_arrays):
    elmo, listeners, docs = tuned
    rng = numpy.random.default_rng(0)
    targets = [[rng.standard_normal((len(doc), 32)).astype("f") for doc in docs] for _ in listeners]
    elmo.update([Example(doc, doc.copy()) for doc in docs])
    for k, (listener, doc_targets) in enumerate(zip(listeners, targets)):
        _, backprop = listener.begin_update(docs)
        backprop(doc_targets)
        if k == 0:  # one listener of two has passed its gradient: the biLM waits for the other
            assert all(p.grad is None for p in elmo.bilm.parameters())
    grads = {name: p.grad.double().numpy() for name, p in elmo.bilm.named_parameters() if p.grad is not None}
    mixes = [(numpy.asarray(w), g) for w, g in (layer_weights(listener.layers[0]) for listener in listeners)]
    words = [[t.text for t in doc] for doc in docs]
    for array, (param, view) in ARRAYS.items():
        direction = rng.standard_normal(tiny_arrays[array].shape)
        eps = 1e-4
        up = dict(tiny_arrays, **{array: tiny_arrays[array].astype(numpy.float64) + eps * direction})
        down = dict(tiny_arrays, **{array: tiny_arrays[array].astype(numpy.float64) - eps * direction})
        numeric = (loss_of(up, tiny_opts, words, mixes, targets) - loss_of(down, tiny_opts, words, mixes, targets)) / (2 * eps)
        analytic = float((view(grads[param]) * direction).sum())
        assert analytic == pytest.approx(numeric, rel=2e-3, abs=1e-3), array
