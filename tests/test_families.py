"""The loader door over every family: NLPL zips and folders as downloaded, language declared by
meta.json, vocab.txt, n_characters 261 and 262; an ELMoForManyLangs model in a German pipeline."""
import json
import warnings
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy

from spacy_elmo.bilm import Embedder
from spacy_elmo.io import extract_vocabulary, family_of, load_bilm, load_with_family, model_language

import reference_math as R
from helpers import build, examples_for, train_steps

GOLDENS = Path(__file__).parent / "goldens"
SENTENCES = [["Москва", "—", "столица", "России", "."], ["Zürich", "ist", "schön"]]


def _nlpl_zip(tmp_path: Path, tiny_opts, tiny_arrays, n_characters: int, vocab: bool, meta: bool, nested: bool):
    opts = dict(tiny_opts, char_cnn=dict(tiny_opts["char_cnn"], n_characters=n_characters))
    options, weights = R.write_published(tmp_path / "src", opts, tiny_arrays)
    archive = tmp_path / "210.zip"
    prefix = "210/" if nested else ""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(weights, prefix + "model.hdf5")
        z.write(options, prefix + "options.json")
        if vocab:
            z.writestr(prefix + "vocab.txt", "<S>\n</S>\n<UNK>\nи\nв\nМосква\n")
        if meta:
            z.writestr(prefix + "meta.json", json.dumps({"id": 210, "corpus": [{"language": "rus", "tokens": 1}]}))
    return archive, options, weights


@pytest.mark.parametrize("n_characters", [261, 262])
@pytest.mark.parametrize("vocab,meta,nested", [(True, True, False), (False, False, True), (True, False, True)])
def test_nlpl_zip_as_downloaded(tmp_path, tiny_opts, tiny_arrays, n_characters, vocab, meta, nested):
    archive, options, weights = _nlpl_zip(tmp_path, tiny_opts, tiny_arrays, n_characters, vocab, meta, nested)
    bilm, family = load_with_family(archive)
    assert family == "nlpl" and family_of(archive) == "zip"
    want = Embedder(load_bilm(weights, options)).embed(SENTENCES)
    for a, b in zip(Embedder(bilm).embed(SENTENCES), want):
        numpy.testing.assert_array_equal(a, b)
    for a, s in zip(want, SENTENCES):  # and the float64 maths of the published biLM
        numpy.testing.assert_allclose(a, R.elmo_layers(tiny_arrays, tiny_opts, s), atol=1e-5, rtol=0)
    assert model_language(bilm) == ("ru" if meta else None)
    assert extract_vocabulary(archive) == (["и", "в", "Москва"] if vocab else [])


def test_nlpl_extracted_folder(tmp_path, tiny_opts, tiny_arrays):
    archive, options, weights = _nlpl_zip(tmp_path, tiny_opts, tiny_arrays, 261, True, True, False)
    folder = tmp_path / "extracted"
    zipfile.ZipFile(archive).extractall(folder)
    assert family_of(folder) == "nlpl"
    bilm = load_bilm(folder)
    assert model_language(bilm) == "ru" and extract_vocabulary(folder)[:2] == ["и", "в"]
    for a, b in zip(Embedder(bilm).embed(SENTENCES), Embedder(load_bilm(weights, options)).embed(SENTENCES)):
        numpy.testing.assert_array_equal(a, b)
    (folder / "options.json").unlink()
    with pytest.raises(ValueError, match="needs options.json beside model.hdf5"):
        load_bilm(folder)


def test_efml_zip(tmp_path):
    """NLPL ships the ELMoForManyLangs models as zips too."""
    archive = tmp_path / "144.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in (GOLDENS / "efml_small").iterdir():
            z.write(path, path.name)
    bilm, family = load_with_family(archive)
    assert family == "elmoformanylangs (zip)"
    for a, b in zip(Embedder(bilm).embed(SENTENCES), Embedder(load_bilm(GOLDENS / "efml_small")).embed(SENTENCES)):
        numpy.testing.assert_array_equal(a, b)


def test_broken_zip_is_one_line(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="broken.zip: not a readable zip archive"):
        load_bilm(bad)
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(ValueError, match=r"empty.zip \(zip\): <zip>: not a biLM model folder"):
        load_bilm(empty)


def test_language_mismatch_warns(tmp_path, tiny_opts, tiny_arrays):
    archive, _, _ = _nlpl_zip(tmp_path, tiny_opts, tiny_arrays, 262, False, True, False)
    for lang, warns in (("de", True), ("ru", False)):
        nlp = spacy.blank(lang)
        nlp.add_pipe("elmo", config={"weights": str(archive)})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nlp.initialize()
        said = [str(w.message) for w in caught if "declare the language" in str(w.message)]
        assert bool(said) == warns, said


def test_german_pipeline_trains_ner_on_an_efml_model(tmp_path):
    """spacy.blank('de') + an ELMoForManyLangs-layout model: NER learns through the listener, and the
    pipeline survives to_disk / spacy.load with the same entities and vectors."""
    folder = GOLDENS / "efml_small"
    nlp = build("ner_elmo", tmp_path, None, **{
        "nlp.lang": "de", "paths.elmo_weights": str(folder), "paths.elmo_options": None,
        "components.ner.model.tok2vec.elmo.width": 16,
    })
    assert nlp.lang == "de" and nlp.get_pipe("elmo").bilm.tokens.kind == "elmoformanylangs"
    losses = train_steps(nlp, 27)
    assert numpy.mean(losses[-3:]) < 0.5 * numpy.mean(losses[:3]), losses
    texts = [eg.reference.text for eg in examples_for(nlp)]
    before = [(d.ents, d._.elmo) for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline")
    assert again.lang == "de"
    for (ents, vectors), doc in zip(before, again.pipe(texts)):
        assert [(e.text, e.label_) for e in ents] == [(e.text, e.label_) for e in doc.ents]
        numpy.testing.assert_allclose(doc._.elmo, vectors, atol=1e-6)


def test_options_of_every_family_without_the_weights(tmp_path, tiny_files):
    """What scripts/train_with_bilm.py and `embed` read for the shapes: the loaded model's options."""
    from spacy_elmo.io import model_options

    folder = tmp_path / "assets" / "efml_xx"  # the project's fetch layout: a folder holding the zip
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "999.zip", "w") as z:
        for path in (GOLDENS / "efml_small").iterdir():
            z.write(path, f"xx.model/{path.name}")
    want = load_bilm(GOLDENS / "efml_small").options
    for path in (GOLDENS / "efml_small", folder / "999.zip", folder):
        got = model_options(path)
        assert (got.char_cnn, got.lstm) == (want.char_cnn, want.lstm), path
    assert family_of(folder) == "zip" and load_with_family(folder)[1] == "elmoformanylangs (zip)"
    options, weights = tiny_files
    assert model_options(weights, options).lstm == load_bilm(weights, options).options.lstm


def test_project_lists_the_other_languages():
    import yaml

    project = yaml.safe_load((Path(__file__).parents[1] / "project.yml").read_text(encoding="utf-8"))
    efml = [a for a in project["assets"] if a["dest"].startswith("assets/elmo/efml_")]
    assert len(efml) == 44 and len({a["dest"].split("/")[2] for a in efml}) == 44
    ids = sorted(int(a["url"].rsplit("/", 1)[1].split(".")[0]) for a in efml)
    assert ids == list(range(136, 180))
    norelmo = [a for a in project["assets"] if a["dest"].startswith("assets/elmo/norelmo_")]
    for asset in efml + norelmo:
        assert asset["extra"] and "checksum" not in asset and "no public checksum" in asset["description"]
        assert asset["url"].startswith("${vars.nlpl_url}/")
    assert project["vars"]["nlpl_url"] == "http://vectors.nlpl.eu/repository"
    commands = {c["name"]: c for c in project["commands"]}
    for name in ("train-ner-published", "train-textcat-published"):
        assert "--nlp.lang ${vars.lang}" in commands[name]["script"][0]
    assert "lang" in project["vars"]


def test_zip_with_meta_beside_the_model_folder(tmp_path):
    archive = tmp_path / "142.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("meta.json", json.dumps({"corpus": [{"language": "deu"}]}))
        z.writestr("README", "an ELMoForManyLangs model")
        for path in (GOLDENS / "efml_small").iterdir():
            z.write(path, f"de.model/{path.name}")
    bilm, family = load_with_family(archive)
    assert family == "elmoformanylangs (zip)" and model_language(bilm) == "de"
