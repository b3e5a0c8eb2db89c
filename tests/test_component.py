"""The `elmo` component: vectors on tokens, spans and docs; mixes; sentences and windows; serialization."""
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin

import reference_math as R
from spacy_elmo.sequences import doc_sequences

TEXT = "They can't trust their friends. He has a trust fund."


def test_vectors_on_tokens_spans_and_docs(tiny_nlp, tiny_opts, tiny_arrays):
    doc = tiny_nlp(TEXT)
    words = [t.text for t in doc]
    layers = doc._.elmo_data.layers
    assert layers.shape == (3, len(doc), 32) and layers.dtype == numpy.float32
    want = R.elmo_layers(tiny_arrays, tiny_opts, words)
    assert numpy.abs(layers - want).max() <= 1e-4
    trust1, trust2 = doc[3], doc[10]
    assert trust1.text == trust2.text == "trust"
    assert numpy.allclose(trust1._.elmo, want[:, 3].mean(axis=0), atol=1e-4)
    assert numpy.abs(trust1._.elmo - trust2._.elmo).max() > 1e-2  # context matters
    assert numpy.allclose(doc[0:2]._.elmo, want[:, 0:2].mean(axis=0).mean(axis=0), atol=1e-4)
    assert numpy.allclose(doc._.elmo, want.mean(axis=0).mean(axis=0), atol=1e-4)


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"mix": "top"}, lambda L: L[-1]),
        ({"mix": "all"}, lambda L: numpy.concatenate(list(L), axis=-1)),
        ({"mix": "weighted", "mix_weights": [1.0, 0.0, 3.0], "gamma": 2.0}, lambda L: 2.0 * (0.25 * L[0] + 0.75 * L[2])),
    ],
)
def test_mixes(tiny_files, config, expected):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(tiny_files[1]), "options": str(tiny_files[0]), **config})
    doc = nlp(TEXT)
    want = expected(doc._.elmo_data.layers)
    got = numpy.stack([t._.elmo for t in doc])
    assert got.shape == want.shape
    assert numpy.allclose(got, want, atol=1e-6)


def test_bad_mix_settings(tiny_files):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="mix must be one of"):
        nlp.add_pipe("elmo", config={"mix": "max"})
    with pytest.raises(ValueError, match="mix_weights exactly when"):
        nlp.add_pipe("elmo", name="e2", config={"mix": "weighted"})
    nlp.add_pipe("elmo", name="e3", config={
        "weights": str(tiny_files[1]), "options": str(tiny_files[0]), "mix": "weighted", "mix_weights": [1.0, 2.0]})
    with pytest.raises(ValueError, match="needs 3 non-negative weights"):
        nlp("a b")


def test_set_tensor_backs_token_vector_and_similarity(tiny_files):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(tiny_files[1]), "options": str(tiny_files[0]), "set_tensor": True})
    doc = nlp(TEXT)
    assert numpy.allclose(doc[3].vector, doc[3]._.elmo)
    a, b = doc[3]._.elmo, doc[5]._.elmo  # "trust", "friends" (spaCy gives 1.0 for the same word, unasked)
    assert doc[3].similarity(doc[5]) == pytest.approx(float(a @ b / (numpy.linalg.norm(a) * numpy.linalg.norm(b))), rel=1e-5)
    assert not numpy.allclose(doc[3].vector, doc[10].vector)  # the two "trust"s: contextual vectors


def test_sentences_are_read_separately(tiny_files, tiny_opts, tiny_arrays):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("elmo", config={"weights": str(tiny_files[1]), "options": str(tiny_files[0])})
    doc = nlp(TEXT)
    sents = list(doc.sents)
    assert len(sents) == 2
    for sent in sents:
        want = R.elmo_layers(tiny_arrays, tiny_opts, [t.text for t in sent])
        assert numpy.abs(doc._.elmo_data.layers[:, sent.start : sent.end] - want).max() <= 1e-4


def test_windows_without_sentence_boundaries():
    nlp = spacy.blank("en")
    doc = nlp(("word " * 10 + "end . ") * 5)  # 60 tokens, a full stop every 12
    windows = doc_sequences(doc, 20)
    assert windows[0] == (0, 12)  # cut after the full stop in the second half of the window
    assert all(0 < end - start <= 20 for start, end in windows)
    assert [i for w in windows for i in range(*w)] == list(range(len(doc)))
    plain = nlp("a " * 50)
    assert doc_sequences(plain, 20) == [(0, 20), (20, 40), (40, 50)]
    assert doc_sequences(nlp(""), 20) == []


def test_long_doc_is_windowed_and_exact(tiny_files, tiny_opts, tiny_arrays):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(tiny_files[1]), "options": str(tiny_files[0]), "model": {"window": 16}})
    doc = nlp("one two three four five six seven eight nine ten " * 4)
    for start, end in doc_sequences(doc, 16):
        want = R.elmo_layers(tiny_arrays, tiny_opts, [t.text for t in doc[start:end]])
        assert numpy.abs(doc._.elmo_data.layers[:, start:end] - want).max() <= 1e-4


def test_pipe_equals_call_and_keeps_order(tiny_nlp):
    texts = [TEXT, "Short.", "", "A much longer text that goes on for a while, with commas, and more words."] * 3
    piped = list(tiny_nlp.pipe(texts, batch_size=4))
    for text, doc in zip(texts, piped):
        assert doc.text == text
        single = tiny_nlp(text)._.elmo_data.layers
        assert doc._.elmo_data.layers.shape == single.shape == (3, len(doc), 32)
        assert numpy.allclose(doc._.elmo_data.layers, single, atol=1e-6)


def test_save_and_load_offline(tiny_files, tmp_path):
    options, weights = tiny_files
    copy_opts, copy_weights = tmp_path / "o.json", tmp_path / "w.hdf5"
    copy_opts.write_bytes(options.read_bytes())
    copy_weights.write_bytes(weights.read_bytes())
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(copy_weights), "options": str(copy_opts)})
    before = nlp(TEXT)._.elmo_data.layers
    nlp.to_disk(tmp_path / "pipeline")
    data = nlp.to_bytes()
    copy_opts.unlink()
    copy_weights.unlink()
    loaded = spacy.load(tmp_path / "pipeline")
    assert numpy.array_equal(loaded(TEXT)._.elmo_data.layers, before)
    fresh = spacy.blank("en")
    fresh.add_pipe("elmo", config={"weights": str(copy_weights), "options": str(copy_opts)})
    fresh.from_bytes(data)
    assert numpy.array_equal(fresh(TEXT)._.elmo_data.layers, before)
    assert not list((tmp_path / "pipeline").rglob("*.hdf5"))  # no hdf5 inside: h5py not needed to load


def test_spacy_load_needs_no_import(tiny_nlp, tmp_path):
    """The factory is found through the spacy_factories entry point."""
    tiny_nlp.to_disk(tmp_path / "pipeline")
    code = f"import spacy; nlp = spacy.load({str(tmp_path / 'pipeline')!r}); print(nlp('a b')[0]._.elmo.shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(32,)"


def test_doc_data_travels_in_docbin(tiny_nlp):
    doc = tiny_nlp(TEXT)
    db = DocBin(store_user_data=True, docs=[doc])
    again = list(DocBin().from_bytes(db.to_bytes()).get_docs(tiny_nlp.vocab))[0]
    assert numpy.array_equal(again._.elmo_data.layers, doc._.elmo_data.layers)
    assert numpy.array_equal(again[3]._.elmo, doc[3]._.elmo)


def test_no_weights_gives_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    with pytest.raises(ValueError, match="has no weights yet"):
        nlp("text")


def test_initialize_with_registered_loader(tiny_files):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    nlp.config["initialize"]["components"]["elmo"] = {
        "loader": {"@misc": "spacy-elmo.BiLMLoader.v1", "weights": str(tiny_files[1]), "options": str(tiny_files[0])}
    }
    nlp.initialize()
    assert nlp(TEXT)._.elmo_data.layers.shape == (3, 13, 32)


def test_extensions_registered_once(tiny_files):
    for _ in range(2):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config={"weights": str(tiny_files[1]), "options": str(tiny_files[0])})
    assert Doc.has_extension("elmo_data") and Doc.has_extension("elmo")
