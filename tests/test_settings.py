"""Each setting has one home, and non-default settings survive every way a pipeline is saved and loaded.

What reads the text lives on the biLM layer (``[components.elmo.model]``, ``spacy-elmo.BiLM.v2``); what
shapes the output on the component (``[components.elmo]``). A pipeline built with the defaults and loaded
from one saved with other settings must run with the loaded ones.
"""
import os
import stat

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from thinc.api import Config

from spacy_elmo.io import bilm_to_bytes, load_native, save_native
from spacy_elmo.layers.bilm_model import get_doc_cache, get_embedder, get_settings
from spacy_elmo.layers.runtime import BiLMSettings

# every model setting off its default, and settings that change the output: window (a long Doc without
# sentence boundaries is cut differently), precision (fast runs on every CPU: on the kernels where oneDNN
# has bfloat16 products, else on the plain forwards) and the mix
MODEL = {"window": 6, "max_batch_tokens": 64, "cache_size": 7, "doc_cache_size": 0, "device": "cpu",
         "precision": "fast", "frozen": False}
OUTPUT = {"mix": "weighted", "mix_weights": [1.0, 0.0, 3.0], "gamma": 2.0, "set_tensor": True}
WORDS = ("the cat sat on the mat and the dog barked at it while birds flew over the house of trust").split()


def pipeline(tiny_files, model=None, **output):
    options, weights = tiny_files
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options), "model": model or {}, **output})
    return nlp


def outputs(nlp):
    doc = nlp(Doc(nlp.vocab, words=WORDS))
    return doc._.elmo_data.layers, numpy.stack([t._.elmo for t in doc]), doc.tensor


def assert_runs_with_the_saved_settings(loaded, saved):
    """Same settings on the layer and in the caches it runs with, same component cfg, same outputs."""
    elmo, want = loaded.get_pipe("elmo"), saved.get_pipe("elmo")
    assert elmo.settings == want.settings == BiLMSettings(**MODEL)
    assert elmo.cfg == want.cfg and {k: elmo.cfg[k] for k in OUTPUT} == OUTPUT
    embedder = get_embedder(elmo.model)
    assert (embedder.max_batch_tokens, embedder.cache.capacity, embedder.precision) == (64, 7, MODEL["precision"])
    assert get_doc_cache(elmo.model) is None  # doc_cache_size 0 (and not frozen)
    for got, expected in zip(outputs(loaded), outputs(saved)):
        numpy.testing.assert_array_equal(got, expected)


@pytest.fixture
def saved(tiny_files):
    nlp = pipeline(tiny_files, MODEL, **OUTPUT)
    nlp("warm up")
    return nlp


def test_the_settings_change_the_output(tiny_files, saved):
    """Otherwise the tests below could not tell loaded settings from default ones."""
    default = outputs(pipeline(tiny_files))
    for got, other in zip(outputs(saved)[:2], default[:2]):
        assert got.shape == other.shape and numpy.abs(got - other).max() > 1e-3


def test_one_home_each(tiny_files):
    """The model's settings are the layer's, the output's the component's: no copy in the other."""
    nlp = pipeline(tiny_files, MODEL, **OUTPUT)
    elmo = nlp.get_pipe("elmo")
    assert set(elmo.cfg) == {"weights", "options", *OUTPUT}
    assert get_settings(elmo.model) is elmo.settings
    config = nlp.config["components"]["elmo"]
    assert {k: config["model"][k] for k in MODEL} == MODEL and {k: config[k] for k in OUTPUT} == OUTPUT


def test_to_disk_and_spacy_load(tiny_files, saved, tmp_path):
    saved.to_disk(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p" / "elmo").iterdir()) == ["bilm", "cfg", "settings"]
    assert_runs_with_the_saved_settings(spacy.load(tmp_path / "p"), saved)


def test_from_bytes_into_a_pipeline_built_with_other_settings(tiny_files, saved):
    target = pipeline(tiny_files)
    target("runs with the defaults first")
    target.from_bytes(saved.to_bytes())
    assert_runs_with_the_saved_settings(target, saved)


def test_component_from_bytes_into_one_built_with_other_settings(tiny_files, saved):
    target = pipeline(tiny_files)
    target.get_pipe("elmo").from_bytes(saved.get_pipe("elmo").to_bytes())
    assert_runs_with_the_saved_settings(target, saved)


@pytest.mark.parametrize("whole", [True, False], ids=["nlp", "component"])
def test_from_disk_into_a_pipeline_built_with_other_settings(tiny_files, saved, tmp_path, whole):
    saved.to_disk(tmp_path / "p")
    target = pipeline(tiny_files)
    target("runs with the defaults first")
    if whole:
        target.from_disk(tmp_path / "p")
    else:
        target.get_pipe("elmo").from_disk(tmp_path / "p" / "elmo")
    assert_runs_with_the_saved_settings(target, saved)


def test_exclude_is_honoured(tiny_files, saved, tmp_path):
    elmo = saved.get_pipe("elmo")
    elmo.to_disk(tmp_path / "e", exclude=["settings"])
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["bilm", "cfg"]
    target = pipeline(tiny_files).get_pipe("elmo")
    default = target.settings
    target.from_bytes(elmo.to_bytes(), exclude=["settings"])
    assert target.settings == default and target.cfg == elmo.cfg


def test_replace_listeners_copies_the_settings(tiny_files, tmp_path):
    from helpers import build

    nlp = build("ner_elmo", tmp_path, tiny_files,
                **{"components.elmo.model." + k: v for k, v in MODEL.items() if k != "frozen"})
    nlp.replace_listeners("elmo", "ner", ["model.tok2vec.elmo"])
    copy = next(n for n in nlp.get_pipe("ner").model.walk() if n.name == "elmo_bilm")
    want = BiLMSettings(**{**MODEL, "frozen": True})
    assert get_settings(copy) == want
    assert nlp.config["components"]["ner"]["model"]["tok2vec"]["elmo"]["bilm"]["window"] == MODEL["window"]
    nlp.to_disk(tmp_path / "replaced")
    loaded = next(n for n in spacy.load(tmp_path / "replaced").get_pipe("ner").model.walk() if n.name == "elmo_bilm")
    assert get_settings(loaded) == want


def test_version_1_of_the_layer_still_builds_with_the_defaults(tiny_opts):
    config = Config().from_str('[model]\n@architectures = "spacy-elmo.BiLM.v1"\n')
    from spacy.util import registry

    model = registry.resolve({"model": {**config["model"], "options": tiny_opts}})["model"]
    assert get_settings(model) == get_settings(registry.resolve(
        {"model": {"@architectures": "spacy-elmo.BiLM.v2", "options": tiny_opts}})["model"])


@pytest.mark.parametrize("bad,match", [
    ({"window": 0}, "window and max_batch_tokens must be positive"),
    ({"cache_size": -1}, "cache_size and doc_cache_size must be 0"),
    ({"precision": "half"}, "precision must be one of"),
    ({"device": "gpu"}, "device 'gpu' is not one of"),
])
def test_bad_settings_are_named(bad, match):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=match):
        nlp.add_pipe("elmo", config={"model": bad})


def test_assigns_are_declared():
    assert spacy.blank("en").get_factory_meta("elmo").assigns == ["doc._.elmo_data", "doc.tensor"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_native_files_keep_the_usual_permissions(tiny_files, tmp_path, umask):
    bilm = pipeline(tiny_files).get_pipe("elmo").bilm
    old = os.umask(umask)
    try:
        save_native(bilm, tmp_path / "native")
    finally:
        os.umask(old)
    for name in ("options.json", "weights.pt"):
        assert stat.S_IMODE((tmp_path / "native" / name).stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in (tmp_path / "native").iterdir()) == ["options.json", "weights.pt"]  # no temporaries
    written = {k: (tmp_path / "native" / f).read_bytes() for k, f in (("options", "options.json"), ("weights", "weights.pt"))}
    assert written == bilm_to_bytes(bilm)  # the files are the one serialiser's bytes
    reloaded = load_native(tmp_path / "native")
    for a, b in zip(reloaded.state_dict().values(), bilm.state_dict().values()):
        assert torch_equal(a, b)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def _layer(options, seed):
    import torch
    from spacy.util import registry

    model = registry.resolve({"m": {"@architectures": "spacy-elmo.BiLM.v2", "options": options}})["m"]
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.shims[0]._model.parameters():
            p.uniform_(-0.5, 0.5)
    return model


def test_layer_bytes_bring_new_weights_and_fresh_caches(tiny_opts):
    """The layer's own (thinc) bytes, as a replaced listener's component writes them."""
    docs = [Doc(spacy.blank("en").vocab, words=w) for w in (WORDS[:5], WORDS[3:9], WORDS[:5])]
    old, new = _layer(tiny_opts, 0), _layer(tiny_opts, 1)
    old.predict(docs)  # fills its caches with the old weights
    want = new.predict(docs)
    old.from_bytes(new.to_bytes())
    for got, expected in zip(old.predict(docs), want):
        numpy.testing.assert_array_equal(got, expected)


def test_a_copy_has_caches_of_its_own(tiny_opts):
    model = _layer(tiny_opts, 0)
    model.predict([Doc(spacy.blank("en").vocab, words=WORDS[:4])])
    copy = model.copy()
    assert get_embedder(copy) is not get_embedder(model)
    assert get_embedder(copy).bilm is copy.shims[0]._model is not model.shims[0]._model
    assert get_embedder(copy).cache.slots == {} and get_settings(copy) == get_settings(model)


@pytest.mark.parametrize("how", ["disk", "bytes", "component"])
def test_the_config_written_agrees_with_the_settings_loaded(tiny_files, saved, tmp_path, how):
    """Loaded into a pipeline built with the defaults and saved again, the config.cfg on disk says what the
    pipeline runs with (the model settings and the output settings), and it loads back so."""
    saved.to_disk(tmp_path / "p")
    target = pipeline(tiny_files)
    if how == "disk":
        target.from_disk(tmp_path / "p")
    elif how == "bytes":
        target.from_bytes(saved.to_bytes())
    else:
        target.get_pipe("elmo").from_disk(tmp_path / "p" / "elmo")
    target.to_disk(tmp_path / "q")
    config = Config().from_disk(tmp_path / "q" / "config.cfg")["components"]["elmo"]
    assert {k: config["model"][k] for k in MODEL} == MODEL
    assert {k: config[k] for k in OUTPUT} == OUTPUT
    assert_runs_with_the_saved_settings(spacy.load(tmp_path / "q"), saved)


def test_the_config_of_a_version_1_layer_becomes_version_2_when_settings_are_loaded(tiny_files, saved, tmp_path):
    options, weights = tiny_files
    target = spacy.blank("en")
    target.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                    "model": {"@architectures": "spacy-elmo.BiLM.v1"}})
    target.from_bytes(saved.to_bytes())
    target.to_disk(tmp_path / "q")
    model = Config().from_disk(tmp_path / "q" / "config.cfg")["components"]["elmo"]["model"]
    assert model["@architectures"] == "spacy-elmo.BiLM.v2" and {k: model[k] for k in MODEL} == MODEL
    assert_runs_with_the_saved_settings(spacy.load(tmp_path / "q"), saved)
