"""The ELMo listener protocol: receive, batch check, free after backprop, prediction from Doc data, and
``nlp.replace_listeners``."""
import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam

from spacy_elmo.layers.listener import ElmoListener
from spacy_elmo.layers.scalar_mix import layer_weights
from spacy_elmo.pipeline.component import listener_batch_id
from spacy_elmo.doc_data import ElmoDocData, install_extensions
from helpers import NER_DATA, build, examples_for, listener_mix, train_steps

L, W = 3, 6


@pytest.fixture
def listener():
    model = ElmoListener(width=W, upstream="elmo")
    model.initialize()
    model.layers[0].set_param("s", numpy.asarray([0.5, -1.0, 2.0], dtype="f"))
    return model


@pytest.fixture
def docs():
    install_extensions()
    nlp = spacy.blank("en")
    return [nlp.make_doc("a b c"), nlp.make_doc(""), nlp.make_doc("d e")]


def layers_for(docs, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal((L, len(doc), W)).astype("f") for doc in docs]


def expected_mix(layers, s=(0.5, -1.0, 2.0)):
    w = numpy.exp(s) / numpy.exp(s).sum()
    return [numpy.einsum("l,lnw->nw", w, x) for x in layers]


def test_listener_has_its_width_before_initialization():
    model = ElmoListener(width=1024)
    assert model.name == "elmo_listener" and model.get_dim("nO") == 1024
    assert model.attrs["upstream_name"] == "*"


def test_receive_forward_backprop_and_clear(listener, docs):
    layers = layers_for(docs)
    passed_back = []
    listener.receive(listener_batch_id(docs), layers, lambda d: passed_back.append(d) or [])
    Y, backprop = listener.begin_update(docs)
    for y, e in zip(Y, expected_mix(layers)):
        numpy.testing.assert_allclose(y, e, rtol=1e-5, atol=1e-6)
    dY = [numpy.ones_like(y) for y in Y]
    assert backprop(dY) == []
    assert len(passed_back) == 1
    (d_layers,) = passed_back
    w = numpy.exp([0.5, -1.0, 2.0]) / numpy.exp([0.5, -1.0, 2.0]).sum()
    for d, x in zip(d_layers, layers):
        assert d.shape == x.shape
        numpy.testing.assert_allclose(d, numpy.broadcast_to(w[:, None, None], x.shape), rtol=1e-5)
    assert listener._batch_id is None and listener._received is None and listener._backprop is None


def test_received_layers_may_be_computed_on_first_use(listener, docs):
    calls = []
    layers = layers_for(docs)
    listener.receive(listener_batch_id(docs), lambda: calls.append(1) or layers, lambda d: [])
    assert calls == []
    Y, _ = listener.begin_update(docs)
    assert calls == [1]
    numpy.testing.assert_allclose(Y[0], expected_mix(layers)[0], rtol=1e-5, atol=1e-6)


def test_batch_mismatch_is_an_error(listener, docs):
    listener.receive(listener_batch_id(docs[:1]), layers_for(docs[:1]), lambda d: [])
    with pytest.raises(ValueError, match="received layers for batch"):
        listener.begin_update(docs)


def test_prediction_reads_doc_data(listener, docs):
    layers = layers_for(docs, seed=2)
    for doc, x in zip(docs, layers):
        doc._.elmo_data = ElmoDocData(x)
    Y = listener.predict(docs)
    for y, e in zip(Y, expected_mix(layers)):
        numpy.testing.assert_allclose(y, e, rtol=1e-5, atol=1e-6)
    # in training, with nothing received (frozen, annotating upstream), the Doc data is used too
    Y, backprop = listener.begin_update(docs)
    numpy.testing.assert_allclose(Y[2], expected_mix(layers)[2], rtol=1e-5, atol=1e-6)
    assert backprop([numpy.ones_like(y) for y in Y]) == []
    assert numpy.abs(listener.layers[0].get_grad("s")).sum() > 0


def test_without_data_prediction_has_the_right_shape_and_training_fails(listener, docs):
    Y = listener.predict(docs)
    assert [y.shape for y in Y] == [(3, W), (0, W), (2, W)]
    with pytest.raises(ValueError, match="annotating_components"):
        listener.begin_update(docs)


def test_listeners_are_found_and_width_is_checked(tmp_path, tiny_files):
    nlp = build("ner_elmo", tmp_path, tiny_files)
    elmo = nlp.get_pipe("elmo")
    assert list(elmo.listener_map) == ["ner"]
    (listener,) = elmo.listener_map["ner"]
    assert listener.name == "elmo_listener" and listener.attrs["upstream_name"] == "elmo"
    with pytest.raises(ValueError, match="width"):
        build("ner_elmo", tmp_path / "wide", tiny_files, **{"components.ner.model.tok2vec.elmo.width": 64})


def test_two_listeners_share_one_bilm_run(tmp_path, tiny_files):
    """NER and textcat on one ``elmo``: each learns its own mix from the same layers."""
    nlp = build("ner_elmo", tmp_path, tiny_files)
    textcat = nlp.add_pipe("textcat", config={"model": {
        "@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True, "use_reduce_first": False,
        "use_reduce_last": False, "use_reduce_max": False, "use_reduce_mean": True,
        "tok2vec": {"@architectures": "spacy-elmo.ElmoListener.v1", "width": 32, "upstream": "elmo"},
    }})
    nlp.get_pipe("elmo").find_listeners(textcat)
    assert sorted(nlp.get_pipe("elmo").listener_map) == ["ner", "textcat"]
    examples = examples_for(nlp)
    for eg in examples:
        eg.reference.cats = {"a": float(len(eg.reference) % 2), "b": float(1 - len(eg.reference) % 2)}
    textcat.initialize(lambda: examples, nlp=nlp)
    runs = []
    elmo_model = nlp.get_pipe("elmo").model
    forward = elmo_model._func
    elmo_model._func = lambda m, X, is_train: runs.append(is_train) or forward(m, X, is_train)
    optimizer = Adam(0.01)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    elmo_model._func = forward
    assert runs == [True, True, True]
    ner_mix = listener_mix(nlp, "ner")
    cat_mix = next(n for n in textcat.model.walk() if n.name == "elmo_scalar_mix")
    assert ner_mix is not cat_mix
    assert layer_weights(ner_mix) != layer_weights(cat_mix)


def test_replace_listeners(tmp_path, tiny_files):
    nlp = build("ner_elmo", tmp_path, tiny_files)
    train_steps(nlp, 6)
    texts = [text for text, _ in NER_DATA]
    mix_before = layer_weights(listener_mix(nlp, "ner"))
    tok2vec = nlp.get_pipe("ner").model.get_ref("tok2vec")
    before_docs = list(nlp.pipe(texts))
    before = tok2vec.predict(before_docs)

    nlp.replace_listeners("elmo", "ner", ["model.tok2vec.elmo"])
    assert "ner" not in nlp.get_pipe("elmo").listener_map
    assert not [n for n in nlp.get_pipe("ner").model.walk() if n.name == "elmo_listener"]
    config = nlp.config["components"]["ner"]["model"]["tok2vec"]["elmo"]
    assert config["@architectures"] == "spacy-elmo.StandaloneElmo.v1"
    assert config["bilm"]["options"]["lstm"]["projection_dim"] == 16 and config["width"] == 32
    assert layer_weights(listener_mix(nlp, "ner")) == mix_before

    nlp.remove_pipe("elmo")  # the NER no longer needs it
    docs = [nlp.make_doc(t) for t in texts]
    after = nlp.get_pipe("ner").model.get_ref("tok2vec").predict(docs)
    for a, b in zip(before, after):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    assert ents == [[(e.start, e.end, e.label_) for e in doc.ents] for doc in before_docs]

    # the replaced config rebuilds the model, which reloads with its own copy of the biLM
    nlp.to_disk(tmp_path / "replaced")
    loaded = spacy.load(tmp_path / "replaced")
    assert loaded.pipe_names == ["ner"]
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)] == ents
    reloaded = loaded.get_pipe("ner").model.get_ref("tok2vec").predict([loaded.make_doc(t) for t in texts])
    for a, b in zip(after, reloaded):
        numpy.testing.assert_array_equal(a, b)

    # the replaced component keeps training, its biLM copy stays frozen
    bilm = next(n for n in loaded.get_pipe("ner").model.walk() if n.name == "elmo_bilm")
    state = {k: v.clone() for k, v in bilm.shims[0]._model.state_dict().items()}
    optimizer = loaded.resume_training()
    examples = [Example(loaded.make_doc(eg.reference.text), eg.reference) for eg in examples_for(nlp)]
    for _ in range(3):
        loaded.update(examples, sgd=optimizer)
    assert layer_weights(listener_mix(loaded, "ner")) != mix_before
    assert all((v == bilm.shims[0]._model.state_dict()[k]).all() for k, v in state.items())


def test_replace_listeners_before_the_bilm_is_loaded_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    nlp.add_pipe("textcat", config={"model": {
        "@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True, "use_reduce_first": False,
        "use_reduce_last": False, "use_reduce_max": False, "use_reduce_mean": True,
        "tok2vec": {"@architectures": "spacy-elmo.ElmoListener.v1", "width": 32, "upstream": "elmo"},
    }})
    with pytest.raises(ValueError, match="no biLM yet"):
        nlp.replace_listeners("elmo", "textcat", ["model.tok2vec"])
