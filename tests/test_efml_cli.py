"""`info`, `convert`, `export` and `embed` on ELMoForManyLangs models and NLPL zips."""
import json
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import torch
from typer.testing import CliRunner

import reference_math as R
from spacy_elmo.bilm import Embedder
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm

GOLDENS = Path(__file__).parent / "goldens"
SMALL = GOLDENS / "efml_small"


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def info(path) -> dict:
    result, text = invoke("info", path, "--json")
    assert result.exit_code == 0, text
    return json.loads(result.output)


def test_info_convert_export(tmp_path, monkeypatch):
    facts = info(SMALL)
    assert facts["kind"] == "elmoformanylangs" and facts["listener_width"] == 16
    assert facts["vocabulary"] == {"token_ids": "elmoformanylangs", "characters": 88, "words": 34, "word_dim": 6,
                                   "max_chars": 50}
    result, text = invoke("convert", SMALL, tmp_path / "native")
    assert result.exit_code == 0, text
    # the native directory: no pickle, no hdf5; it loads without h5py
    assert sorted(p.name for p in (tmp_path / "native").iterdir()) == ["options.json", "tokens.json", "weights.pt"]
    assert info(tmp_path / "native")["digest"] == facts["digest"]
    sentences = json.loads((SMALL / "sentences.json").read_text(encoding="utf-8"))
    monkeypatch.setitem(sys.modules, "h5py", None)
    got = Embedder(load_bilm(tmp_path / "native")).embed(sentences)
    monkeypatch.undo()
    with numpy.load(SMALL / "outputs.npz") as golden:
        for i, layers in enumerate(got):
            numpy.testing.assert_allclose(layers, golden[f"sentence_{i}"], atol=1e-5, rtol=0)
    # export: the package's own folder layout (it has no hdf5 form); read by the float64 maths under its
    # own names, it gives the package's goldens
    result, text = invoke("export", tmp_path / "native", tmp_path / "exported")
    assert result.exit_code == 0 and "ELMoForManyLangs layout" in text, text
    out = tmp_path / "exported"
    arch = json.loads((out / "architecture.json").read_text())
    chars, words = R.read_efml_dic(out / "char.dic"), R.read_efml_dic(out / "word.dic")
    embedder = {k: v.numpy() for k, v in torch.load(out / "token_embedder.pkl", weights_only=True).items()}
    encoder = {k: v.numpy() for k, v in torch.load(out / "encoder.pkl", weights_only=True).items()}
    with numpy.load(SMALL / "outputs.npz") as golden:
        for i, sentence in enumerate(sentences):
            want = R.efml_layers(embedder, encoder, arch, chars, words, sentence)
            numpy.testing.assert_allclose(golden[f"sentence_{i}"], want, atol=1e-5, rtol=0)
    assert info(out)["digest"] == facts["digest"]


def test_export_to_hdf5_is_refused_for_a_character_vocabulary(tmp_path):
    from spacy_elmo.io import save_hdf5

    with pytest.raises(ValueError, match="has no published hdf5 form"):
        save_hdf5(load_bilm(SMALL), tmp_path / "options.json", tmp_path / "weights.hdf5")


def test_convert_an_nlpl_zip(tiny_files, tmp_path):
    options, weights = tiny_files
    archive = tmp_path / "210.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(weights, "model.hdf5")
        z.write(options, "options.json")
        z.writestr("meta.json", json.dumps({"corpus": [{"language": "nob"}]}))
    facts = info(archive)
    assert facts["kind"] == "nlpl" and facts["language"] == "nb"
    result, text = invoke("convert", archive, tmp_path / "native")
    assert result.exit_code == 0, text
    assert info(tmp_path / "native")["digest"] == facts["digest"] == info(weights)["digest"]
    assert info(tmp_path / "native")["language"] == "nb"  # kept in options.json


def test_embed_with_an_efml_model_writes_what_the_embedder_gives(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    lines = ["Съешь же ещё этих мягких булок", "Zürich liegt südlich"]
    corpus = tmp_path / "in.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, text = invoke("embed", corpus, "--weights", SMALL, "--output", tmp_path / "out", "--dtype", "float32",
                          "--tokenized")
    assert result.exit_code == 0, text
    table = pq.read_table(tmp_path / "out" / "shards")
    tokens = [line.split() for line in lines]
    want = Embedder(load_bilm(SMALL)).embed(tokens)
    columns = [c for c in table.column_names if c.startswith("layer_")]
    for i in range(table.num_rows):
        assert table.column("tokens")[i].as_py() == tokens[i]
        got = numpy.stack([numpy.asarray(table.column(c)[i].values.flatten().to_numpy(zero_copy_only=False))
                           .reshape(len(tokens[i]), -1) for c in columns])
        assert numpy.array_equal(got, want[i])
