"""`python -m spacy_elmo convert` (published hdf5 -> native biLM directory) and `info` (on every kind of input
and on broken files)."""
import json
import shutil
import sys

import h5py
import numpy
import pytest
from typer.testing import CliRunner

import reference_math as R
from spacy_elmo.bilm import BiLMOptions, Embedder
from spacy_elmo.bilm.model import BiLM
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm, save_native
from spacy_elmo.pretraining import PretrainConfig, pretrain
from helpers import TINY, synthetic_text

SENTENCES = [["They", "can't", "trust", "their", "friends", "."], ["He", "has", "a", "trust", "fund", "."] * 3,
             ["Zürich", "😀", "x" * 80], ["<S>", "a"]]


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())  # wasabi's line wrapping undone


def info(*args: str) -> dict:
    result, text = invoke("info", *args, "--json")
    assert result.exit_code == 0, text
    return json.loads(result.output)


def test_convert_round_trip_gives_identical_vectors(tiny_files, tiny_opts, tiny_arrays, tmp_path, monkeypatch):
    options, weights = tiny_files
    result, text = invoke("convert", weights, tmp_path / "native", "--options", options)
    assert result.exit_code == 0, text
    assert sorted(p.name for p in (tmp_path / "native").iterdir()) == ["options.json", "weights.pt"]
    want = Embedder(load_bilm(weights, options)).embed(SENTENCES)
    monkeypatch.setitem(sys.modules, "h5py", None)  # the native directory never needs h5py
    got = Embedder(load_bilm(tmp_path / "native")).embed(SENTENCES)
    for words, a, b in zip(SENTENCES, got, want):
        assert numpy.array_equal(a, b)
        assert numpy.abs(a - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4
    monkeypatch.undo()
    # the published file names: the options are found beside the weights without --options
    published = tmp_path / "published"
    published.mkdir()
    shutil.copy(weights, published / "elmo_2x32_16_16cnn_1xhighway_weights.hdf5")
    shutil.copy(options, published / "elmo_2x32_16_16cnn_1xhighway_options.json")
    result, text = invoke("convert", published / "elmo_2x32_16_16cnn_1xhighway_weights.hdf5", tmp_path / "native2")
    assert result.exit_code == 0, text
    assert info(tmp_path / "native2")["digest"] == info(tmp_path / "native")["digest"] == info(weights)["digest"]
    # and back: `export` writes the published layout again, with the same arrays
    assert invoke("export", tmp_path / "native", tmp_path / "exported")[0].exit_code == 0
    assert info(tmp_path / "exported" / "weights.hdf5")["digest"] == info(weights)["digest"]


def test_converted_pipeline_gives_identical_vectors(tiny_files, tmp_path):
    import spacy

    options, weights = tiny_files
    assert invoke("convert", weights, tmp_path / "native", "-c", options)[0].exit_code == 0
    docs = []
    for config in ({"weights": str(weights), "options": str(options)}, {"weights": str(tmp_path / "native")}):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config=config)
        docs.append(nlp("They can't trust their friends. He has a trust fund."))
    assert numpy.array_equal(docs[0]._.elmo_data.layers, docs[1]._.elmo_data.layers)


def test_info_on_hdf5_and_native(tiny_files, tiny_arrays, tmp_path):
    options, weights = tiny_files
    facts = info(weights, "--options", options)
    assert facts["kind"] == "hdf5" and facts["options_file"] == str(options)
    assert facts["parameters"]["total"] == sum(a.size for a in tiny_arrays.values()) + 4  # + the padding row
    assert facts["listener_width"] == 32 and facts["sizes"]["output_layers"] == 3
    assert facts["sizes"]["char_filters"] == 16 and facts["sizes"]["lstm_dim"] == 32
    assert facts["files"][weights.name] == weights.stat().st_size
    assert facts["options"]["lstm"]["projection_dim"] == 16
    assert info(weights) == facts  # options.json beside the file
    save_native(load_bilm(weights, options), tmp_path / "native")
    native = info(tmp_path / "native")
    assert native["kind"] == "native" and native["digest"] == facts["digest"]
    assert info(tmp_path / "native" / "weights.pt")["digest"] == facts["digest"]
    with h5py.File(tmp_path / "changed.hdf5", "w") as f:  # one value changed: another digest
        for name, value in tiny_arrays.items():
            value = value.copy()
            if name == "CNN_proj/b_proj":
                value[0] += 1e-3
            f.create_dataset(name, data=value)
    assert info(tmp_path / "changed.hdf5", "-c", options)["digest"] != facts["digest"]
    result, text = invoke("info", weights)
    assert result.exit_code == 0 and "listener width 32" in text and facts["digest"] in text


def test_info_on_a_pretrain_output(tmp_path):
    corpus = tmp_path / "train.txt"
    corpus.write_text(synthetic_text(200))
    config = PretrainConfig(max_steps=2, batch_tokens=256, max_length=30, vocab_size=40, min_count=1, warmup_steps=1,
                            eval_every=100, checkpoint_every=100, log_every=1)
    summary = pretrain([corpus], tmp_path / "bilm", config, BiLMOptions.from_file(TINY))
    facts = info(tmp_path / "bilm")
    assert facts["kind"] == "pretrain" and facts["listener_width"] == 32
    assert facts["lm_head"]["vocab_size"] == len((tmp_path / "bilm" / "vocab.jsonl").read_text().splitlines())
    assert facts["pretraining"]["steps"] == 2 == summary["step"]
    assert facts["digest"] == info(tmp_path / "bilm" / "weights.pt")["digest"]
    result, text = invoke("info", tmp_path / "bilm")
    assert result.exit_code == 0 and "LM head vocabulary" in text and "pretraining 2 steps" in text


@pytest.mark.parametrize("name,size", [("small", 13.6), ("medium", 28.0), ("original", 93.6)])
def test_published_options_files_have_the_published_sizes(name, size):
    assert round(sum(p.numel() for p in BiLM(BiLMOptions.from_file(TINY.parent / f"bilm_{name}.json")).parameters())
                 / 1e6, 1) == size


def broken_files(tmp_path, tiny_files, tiny_arrays):
    """``{case: (info arguments, words the error must name)}``."""
    options, weights = tiny_files
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(weights.read_bytes()[:2000])
    missing = tmp_path / "missing.hdf5"
    wrong = tmp_path / "wrong.hdf5"
    with h5py.File(missing, "w") as f, h5py.File(wrong, "w") as g:
        for name, value in tiny_arrays.items():
            if name != "CNN/W_cnn_1":
                f.create_dataset(name, data=value)
            g.create_dataset(name, data=value[:-1] if name == "CNN_proj/W_proj" else value)
    bad_json = tmp_path / "bad_options.json"
    bad_json.write_text('{"lstm": {"dim": 32,')
    alone = tmp_path / "alone" / "elmo_x_weights.hdf5"
    alone.parent.mkdir()
    shutil.copy(weights, alone)
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    cut_native = tmp_path / "cut_native"
    cut_native.mkdir()
    shutil.copy(options, cut_native / "options.json")
    save_native(load_bilm(weights, options), tmp_path / "full_native")
    (cut_native / "weights.pt").write_bytes((tmp_path / "full_native" / "weights.pt").read_bytes()[:5000])
    return {
        "truncated hdf5": ([cut, "-c", options], ["cut.hdf5", "hdf5"]),
        "missing dataset": ([missing, "-c", options], ["missing.hdf5", "CNN/W_cnn_1"]),
        "wrong shape": ([wrong, "-c", options], ["wrong.hdf5", "CNN_proj/W_proj"]),
        "invalid options": ([weights, "-c", bad_json], ["bad_options.json"]),
        "no options": ([alone], ["elmo_x_weights.hdf5", "options.json", "--options"]),
        "no such path": ([tmp_path / "nothing.hdf5"], ["nothing.hdf5"]),
        "directory without weights": ([empty_dir], ["empty_dir", "weights.pt"]),
        "truncated native weights": ([cut_native], ["cut_native", "weights.pt"]),
    }


def test_info_and_convert_on_broken_files_give_the_loaders_errors(tmp_path, tiny_files, tiny_arrays):
    for case, (args, names) in broken_files(tmp_path, tiny_files, tiny_arrays).items():
        result, text = invoke("info", *args)
        assert result.exit_code == 1, case
        assert "Traceback" not in text and all(name in text for name in names), (case, text)
        if str(args[0]).endswith(".hdf5"):
            result, text = invoke("convert", args[0], tmp_path / "out", *args[1:])
            assert result.exit_code == 1 and all(name in text for name in names), (case, text)
            assert not (tmp_path / "out" / "weights.pt").exists()
    options, weights = tiny_files
    (tmp_path / "a_file").write_text("")
    result, text = invoke("convert", weights, tmp_path / "a_file", "-c", options)
    assert result.exit_code == 1 and "a_file is a file" in text
