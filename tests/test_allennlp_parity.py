"""``spacy_elmo.allennlp`` against AllenNLP itself: goldens written by tests/goldens/make_allennlp_goldens.py
(AllenNLP 2.10.1's ``Elmo`` and ``batch_to_ids``, AllenNLP 0.9.0's ``ElmoEmbedder``) on a tiny biLM."""
import json
from pathlib import Path

import numpy
import pytest
import torch

import reference_math as R
from spacy_elmo.allennlp import Elmo, ElmoEmbedder, batch_to_ids

h5py = pytest.importorskip("h5py")
GOLDENS = Path(__file__).parent / "goldens"
TOLERANCE = 1e-5
gold = numpy.load(GOLDENS / "allennlp_elmo.npz")
SENTENCES = [["The", "cat", "sat", "on", "the", "mat", "."], ["Ünïcödé", "naïve", "café", "日本語", "🙂"],
             ["a" * 60, "<S>", "</S>", "x"], ["short"]]
MIXES = {"scalar_mix_0": ([0.3, -0.5, 1.1], 1.7), "scalar_mix_1": ([-1.0, 0.2, 0.4], 0.6)}
VOCAB = ["@@PADDING@@", "the", "cat", "sat", "on", "mat", ".", "dog", "ran"]
EMBED_LINES = ["The cat sat on the mat .", "a dog", "the cat", "café 🙂 日本語", "The cat sat on the mat ."]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    opts = json.loads(gold["options"].tobytes().decode())
    arrays = {k[len("weights/"):]: gold[k] for k in gold.files if k.startswith("weights/")}
    return R.write_published(tmp_path_factory.mktemp("allennlp"), opts, arrays)


def set_mixes(elmo: Elmo) -> None:
    """The golden's mix weights, through AllenNLP's parameter names."""
    state = {}
    for name, (weights, gamma) in MIXES.items():
        state.update({f"{name}.scalar_parameters.{i}": torch.tensor([w]) for i, w in enumerate(weights)})
        state[f"{name}.gamma"] = torch.tensor([gamma])
    missing, unexpected = elmo.load_state_dict(state, strict=False)
    assert not unexpected


def close(actual: torch.Tensor, name: str) -> None:
    expected = gold[name]
    assert tuple(actual.shape) == expected.shape, name
    numpy.testing.assert_allclose(actual.detach().numpy(), expected, atol=TOLERANCE, rtol=0, err_msg=name)


def test_batch_to_ids_identical():
    sentences = [json.loads(str(gold[f"ids/sentence{i}"])) for i in range(4)]
    ids = batch_to_ids(sentences)
    assert ids.dtype == torch.int64
    numpy.testing.assert_array_equal(ids.numpy(), gold["ids/batch"])
    numpy.testing.assert_array_equal(batch_to_ids(SENTENCES).numpy(), gold["inputs"])


CASES = {
    "plain": {},
    "layer_norm": {"do_layer_norm": True},
    "boundaries": {"keep_sentence_boundaries": True},
    "boundaries_layer_norm": {"keep_sentence_boundaries": True, "do_layer_norm": True},
    "fixed_mix": {"scalar_mix_parameters": [-9e10, 1.0, -9e10]},
    "fixed_mix_layer_norm": {"scalar_mix_parameters": [0.5, -1.0, 2.0], "do_layer_norm": True},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_elmo_matches_allennlp(files, case):
    options, weights = files
    elmo = Elmo(options, weights, 2, dropout=0.0, **CASES[case]).eval()
    if "scalar_mix_parameters" not in CASES[case]:
        set_mixes(elmo)
    else:  # fixed mixes are not trained
        assert not any(p.requires_grad for p in elmo.parameters())
    with torch.no_grad():
        result = elmo(torch.from_numpy(gold["inputs"]))
    assert result["mask"].dtype == torch.bool
    close(result["mask"], f"{case}/mask")
    for k, rep in enumerate(result["elmo_representations"]):
        close(rep, f"{case}/rep{k}")


def test_vocab_to_cache_matches_allennlp(files):
    options, weights = files
    elmo = Elmo(options, weights, 1, dropout=0.0, vocab_to_cache=VOCAB).eval()
    words = torch.from_numpy(gold["vocab/words"])
    chars = batch_to_ids([[VOCAB[i] for i in row if i > 0] for row in words.tolist()])
    with torch.no_grad():
        cached = elmo(chars, words)
        close(cached["elmo_representations"][0], "vocab/rep0")
        close(cached["mask"], "vocab/mask")
        # word ids alone (AllenNLP always wanted the character ids beside them)
        alone = elmo(None, words)["elmo_representations"][0]
        close(alone, "vocab/rep0")


def test_vocab_to_cache_with_padding(files):
    """A padded batch of word ids: AllenNLP's and ours, and ours equal to the character path."""
    options, weights = files
    elmo = Elmo(options, weights, 1, dropout=0.0, vocab_to_cache=VOCAB).eval()
    words = torch.from_numpy(gold["vocab_padded/words"])
    chars = batch_to_ids([[VOCAB[i] for i in row if i > 0] for row in words.tolist()])
    with torch.no_grad():
        cached = elmo(chars, words)
        from_chars = Elmo(options, weights, 1, dropout=0.0).eval()(chars)
    close(cached["elmo_representations"][0], "vocab_padded/rep0")
    close(cached["mask"], "vocab_padded/mask")
    torch.testing.assert_close(cached["elmo_representations"][0], from_chars["elmo_representations"][0],
                               atol=TOLERANCE, rtol=0)


def test_vocab_to_cache_unknown_word_falls_back(files):
    """A word id past the cached vocabulary: the character ids are used instead, as AllenNLP does."""
    options, weights = files
    elmo = Elmo(options, weights, 1, dropout=0.0, vocab_to_cache=VOCAB).eval()
    words = torch.from_numpy(gold["vocab/words"]).clone()
    words[0, 2] = len(VOCAB) + 5
    chars = batch_to_ids([[VOCAB[i] for i in row if i > 0] for row in gold["vocab/words"].tolist()])
    with torch.no_grad():
        close(elmo(chars, words)["elmo_representations"][0], "vocab/rep0")


def test_more_than_three_dimensions(files):
    options, weights = files
    elmo = Elmo(options, weights, 1, dropout=0.0).eval()
    with torch.no_grad():
        result = elmo(torch.from_numpy(gold["inputs"]).view(2, 2, -1, 50))
    close(result["mask"], "four_dims/mask")
    close(result["elmo_representations"][0], "four_dims/rep0")


# -- ElmoEmbedder (AllenNLP 0.9.0) ------------------------------------------------------------------


def read_hdf5(path: Path):
    """Every dataset: name -> (dtype, shape, value)."""
    with h5py.File(path, "r") as f:
        assert all(isinstance(f[k], h5py.Dataset) for k in f.keys())
        return {k: (f[k].dtype, f[k].shape, f[k][...]) for k in f.keys()}


@pytest.mark.parametrize("name,fmt,kwargs", [
    ("all", "all", {}), ("top", "top", {"forget_sentences": True}), ("average", "average", {}),
    ("keys", "all", {"use_sentence_keys": True}),
])
def test_embed_file_matches_allennlp(files, tmp_path, name, fmt, kwargs):
    options, weights = files
    lines = EMBED_LINES[:4] if name == "keys" else EMBED_LINES
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf8")
    out = tmp_path / "out.hdf5"
    ElmoEmbedder(options, weights).embed_file(open(text, encoding="utf8"), out, fmt, batch_size=2, **kwargs)
    ours, theirs = read_hdf5(out), read_hdf5(GOLDENS / f"allennlp_embed_file_{name}.hdf5")
    assert sorted(ours) == sorted(theirs)
    for key, (dtype, shape, value) in theirs.items():
        assert (ours[key][0], ours[key][1]) == (dtype, shape), key
        if key == "sentence_to_index":
            assert json.loads(ours[key][2][0]) == json.loads(value[0])
            assert ours[key][2][0] == value[0]  # the very same JSON text
        else:
            numpy.testing.assert_allclose(ours[key][2], value, atol=TOLERANCE, rtol=0, err_msg=key)


def test_embedder_empty_sentences(files):
    options, weights = files
    expected = json.loads((GOLDENS / "allennlp_embedder_empty.json").read_text())
    embedder = ElmoEmbedder(options, weights)
    # AllenNLP returned float64 zeros of the original model's width (3, 0, 1024) whatever the model;
    # ours: float32 of the model's own width
    assert expected["alone"][0] == [3, 0, 1024]
    assert embedder.embed_batch([[]])[0].shape == (3, 0, 32)
    assert embedder.embed_batch([[]])[0].dtype == numpy.float32
    mixed = embedder.embed_batch([["a"], []])
    assert [list(a.shape) for a in mixed] == [expected["in_batch"][0][0], [3, 0, 32]]


def test_state_dict_saved_from_allennlp_loads(files):
    """A model fine-tuned with AllenNLP (every biLM parameter moved) saved its state dict under AllenNLP's
    names: it loads, strictly, and gives AllenNLP's outputs."""
    options, weights = files
    state = {k[len("finetuned_state/"):]: torch.from_numpy(gold[k]) for k in gold.files if k.startswith("finetuned_state/")}
    assert any(k.startswith("_elmo_lstm._elmo_lstm.forward_layer_1") for k in state)
    elmo = Elmo(options, weights, 1, requires_grad=True, dropout=0.0).eval()
    elmo.load_state_dict(state)
    with torch.no_grad():
        close(elmo(torch.from_numpy(gold["inputs"]))["elmo_representations"][0], "finetuned/rep0")
    # and inside a larger model, under a prefix
    outer = torch.nn.ModuleDict({"elmo": Elmo(options, weights, 1, dropout=0.0)}).eval()
    outer.load_state_dict({f"elmo.{k}": v for k, v in state.items()})
    with torch.no_grad():
        close(outer["elmo"](torch.from_numpy(gold["inputs"]))["elmo_representations"][0], "finetuned/rep0")
