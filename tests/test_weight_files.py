"""Published hdf5 and native weight files: round trips, and errors that name what is wrong."""
import json

import h5py
import numpy
import pytest
import torch

import reference_math as R
from spacy_elmo.bilm import BiLM, BiLMOptions
from spacy_elmo.io import load_bilm, load_native, save_hdf5, save_native
from spacy_elmo.io.hdf5 import published_layout


class Payload:
    """An arbitrary class: unpickling it would run code of the file's choosing."""


def _state_equal(a: BiLM, b: BiLM) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_layout_names_match_the_published_files(tiny_opts, tiny_arrays):
    layout = dict(published_layout(BiLMOptions.from_dict(tiny_opts)))
    assert layout == {name: a.shape for name, a in tiny_arrays.items()}


def test_export_writes_the_arrays_it_read(tiny_files, tiny_arrays, tmp_path):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    save_hdf5(bilm, tmp_path / "options.json", tmp_path / "weights.hdf5")
    with h5py.File(tmp_path / "weights.hdf5", "r") as f:
        for name, array in tiny_arrays.items():
            assert numpy.array_equal(f[name][...], array), name
    again = load_bilm(tmp_path / "weights.hdf5", tmp_path / "options.json")
    assert _state_equal(bilm, again)


def test_native_round_trip(tiny_files, tmp_path):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    save_native(bilm, tmp_path / "native")
    assert _state_equal(bilm, load_bilm(tmp_path / "native"))


def test_options_round_trip_keeps_training_keys(tiny_opts):
    data = dict(tiny_opts, n_tokens_vocab=793471, dropout=0.1)
    again = BiLMOptions.from_dict(BiLMOptions.from_dict(data).to_dict()).to_dict()
    assert again["n_tokens_vocab"] == 793471 and again["lstm"]["dim"] == 32


def test_missing_weight_file(tiny_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.hdf5"):
        load_bilm(tmp_path / "nothere.hdf5", tiny_files[0])


def test_missing_options_file(tiny_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="options-missing.json"):
        load_bilm(tiny_files[1], tmp_path / "options-missing.json")


def test_hdf5_without_options(tiny_files, tmp_path):
    alone = tmp_path / "weights.hdf5"  # no options.json beside it either
    alone.write_bytes(tiny_files[1].read_bytes())
    with pytest.raises(ValueError, match="needs its options.json"):
        load_bilm(alone)
    assert load_bilm(tiny_files[1]) is not None  # options.json beside the file is found


def test_truncated_hdf5(tiny_files, tmp_path):
    data = tiny_files[1].read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.hdf5"):
        load_bilm(cut, tiny_files[0])


def test_not_hdf5(tiny_files, tmp_path):
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="junk.hdf5.*cannot be read as hdf5"):
        load_bilm(junk, tiny_files[0])


def test_missing_dataset_names_it(tiny_opts, tiny_arrays, tmp_path):
    arrays = {k: v for k, v in tiny_arrays.items() if k != "CNN_high_0/W_carry"}
    options, weights = R.write_published(tmp_path, tiny_opts, arrays)
    with pytest.raises(ValueError, match=r"weights.hdf5: dataset 'CNN_high_0/W_carry' is missing \(expected shape \(16, 16\)\)"):
        load_bilm(weights, options)


def test_mismatched_options_name_dataset_and_both_shapes(tiny_opts, tiny_files, tmp_path):
    wrong = json.loads(json.dumps(tiny_opts))
    wrong["lstm"]["dim"] = 64
    (tmp_path / "options.json").write_text(json.dumps(wrong))
    msg = r"dataset 'RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0' has shape \(32, 128\), but the options require \(32, 256\)"
    with pytest.raises(ValueError, match=msg):
        load_bilm(tiny_files[1], tmp_path / "options.json")


def test_malformed_options(tiny_files, tmp_path):
    (tmp_path / "options.json").write_text(json.dumps({"lstm": {"dim": 4}}))
    with pytest.raises(ValueError, match="options.json.*char_cnn"):
        load_bilm(tiny_files[1], tmp_path / "options.json")


def test_native_shape_mismatch_and_truncation(tiny_files, tmp_path):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    save_native(bilm, tmp_path / "native")
    state = torch.load(tmp_path / "native" / "weights.pt", weights_only=True)
    state["lstm.layers.0.bias"] = torch.zeros(2, 7)
    torch.save(state, tmp_path / "native" / "weights.pt")
    with pytest.raises(ValueError, match=r"'lstm.layers.0.bias' has shape \(2, 7\).*\(2, 128\)"):
        load_native(tmp_path / "native")
    data = (tmp_path / "native" / "weights.pt").read_bytes()
    (tmp_path / "native" / "weights.pt").write_bytes(data[:100])
    with pytest.raises(ValueError, match="weights.pt.*truncated"):
        load_native(tmp_path / "native")


def test_native_refuses_pickled_objects(tiny_files, tmp_path):
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    save_native(bilm, tmp_path / "native")
    torch.save({"evil": Payload()}, tmp_path / "native" / "weights.pt")
    with pytest.raises(ValueError, match="cannot read the biLM weights"):
        load_native(tmp_path / "native")
