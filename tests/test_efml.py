"""ELMoForManyLangs models: parity with the package's own outputs (goldens made by
tests/goldens/make_efml_goldens.py in a side venv) and with an independent float64 version of its maths,
its token ids, loading without unpickling, the native round trip, bad folders."""
import json
import pickle
import shutil
from pathlib import Path

import numpy
import pytest
import torch

from spacy_elmo.bilm import Embedder, cpu_kernels
from spacy_elmo.bilm.token_ids import CharVocabulary, PublishedBytes, token_ids_from_dict
from spacy_elmo.io import bilm_from_bytes, bilm_to_bytes, family_of, load_bilm, load_native, save_efml, save_native
from spacy_elmo.io.efml import load_state, read_dic

import reference_math as R

GOLDENS = Path(__file__).parent / "goldens"
MODELS = ["efml_small", "efml_small_nowords"]


def _sentences(folder: Path):
    return json.loads((folder / "sentences.json").read_text(encoding="utf-8"))


def _golden(folder: Path):
    with numpy.load(folder / "outputs.npz", allow_pickle=False) as data:
        return [data[f"sentence_{i}"] for i in range(len(data.files))]


def _arch(folder: Path) -> dict:
    return json.loads((folder / "arch_small.json").read_text())


@pytest.mark.parametrize("name", MODELS)
def test_goldens_of_the_package(name):
    """Every layer of every sentence (Latin with diacritics, Cyrillic, CJK, Arabic, a token cut to length,
    a literal <bos>, U+3000, an empty token, unknown characters and words) within 1e-5 of the package's."""
    folder = GOLDENS / name
    bilm = load_bilm(folder)
    assert family_of(folder) == "elmoformanylangs" and isinstance(bilm.tokens, CharVocabulary)
    sentences = _sentences(folder)
    got = Embedder(bilm, max_batch_tokens=10_000).embed(sentences)  # all sentences in one batch: stateless
    for mine, theirs in zip(got, _golden(folder)):
        assert mine.shape == theirs.shape
        numpy.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_float64_reference(name):
    """Ours and the package's goldens against the float64 maths written from the package's code, on its
    own state dict names (no conversion shared with the package under test)."""
    folder = GOLDENS / name
    arch = _arch(folder)
    chars = R.read_efml_dic(folder / "char.dic")
    words = R.read_efml_dic(folder / "word.dic")
    embedder = {k: v.numpy() for k, v in torch.load(folder / "token_embedder.pkl", weights_only=True).items()}
    encoder = {k: v.numpy() for k, v in torch.load(folder / "encoder.pkl", weights_only=True).items()}
    bilm = load_bilm(folder)
    got = Embedder(bilm, cache_size=0).embed(_sentences(folder))
    for sentence, mine, theirs in zip(_sentences(folder), got, _golden(folder)):
        want = R.efml_layers(embedder, encoder, arch, chars, words, sentence)
        numpy.testing.assert_allclose(theirs, want, atol=1e-5, rtol=0)
        numpy.testing.assert_allclose(mine, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_kernels_and_cache_agree(name):
    """The CPU kernels and the character-CNN cache give the plain maths' numbers for this family too."""
    bilm = load_bilm(GOLDENS / name)
    sentences = _sentences(GOLDENS / name)
    cached = Embedder(bilm)
    cached.warm_cache([w for s in sentences for w in s])
    with_cache = cached.embed(sentences)
    with cpu_kernels.disabled():
        plain = Embedder(bilm, cache_size=0).embed(sentences)
    for a, b in zip(with_cache, plain):
        numpy.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_token_ids_as_the_package_makes_them():
    folder = GOLDENS / "efml_small"
    chars, words = R.read_efml_dic(folder / "char.dic"), R.read_efml_dic(folder / "word.dic")
    tokens = load_bilm(folder).tokens
    assert isinstance(tokens, CharVocabulary)
    sample = ["Zürich", "<bos>", "<eos>", "Ωmega", "", "x\u3000y", "a" * 30 + "ü" * 30, "<S>"]
    got, word_ids = tokens.ids(sample)
    for row, token in enumerate(sample):
        cut = R.efml_tokens([token], 50)[1]
        assert got[row].tolist() == [i + 1 for i in R.efml_char_ids(cut, chars, 50)]
        assert word_ids is not None and word_ids[row] == words.get(cut, words["<oov>"])
    # the swapped word marks, frozen into the released models
    assert got[1, 0] == chars["<eow>"] + 1 and got[1, 2] == chars["<bow>"] + 1
    assert "\u3000" in chars and got[5, 2] == chars["\u3000"] + 1
    assert got[6, 1 + 48] == chars["<bow>"] + 1  # cut to 48 characters (code points, not bytes)


def test_dic_reader_matches_the_package(tmp_path):
    path = tmp_path / "char.dic"
    path.write_text("a\t0\n\u3000\t1\n \t2\n<bos>\t3\n<eos>\t4\n<oov>\t5\n<pad>\t6\n<bow>\t7\n<eow>\t8\n\n", encoding="utf-8")
    assert read_dic(path, ()) == R.read_efml_dic(path) == {
        "a": 0, "\u3000": 2, "<bos>": 3, "<eos>": 4, "<oov>": 5, "<pad>": 6, "<bow>": 7, "<eow>": 8}


@pytest.mark.parametrize("name", MODELS)
def test_native_round_trip(name, tmp_path):
    """convert's target: a native directory (options.json, weights.pt, tokens.json) with the same layers;
    also the bytes a pipeline stores, and the package's own layout written back."""
    folder = GOLDENS / name
    bilm = load_bilm(folder)
    sentences = _sentences(folder)
    want = Embedder(bilm).embed(sentences)
    save_native(bilm, tmp_path / "native")
    assert sorted(p.name for p in (tmp_path / "native").iterdir()) == ["options.json", "tokens.json", "weights.pt"]
    assert family_of(tmp_path / "native") == "native"
    for again in (load_native(tmp_path / "native"), bilm_from_bytes(bilm_to_bytes(bilm)), _via_efml(bilm, tmp_path)):
        assert again.tokens == bilm.tokens
        for a, b in zip(Embedder(again).embed(sentences), want):
            numpy.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def _via_efml(bilm, tmp_path):
    save_efml(bilm, tmp_path / "efml")
    return load_bilm(tmp_path / "efml")


def test_published_tokens_store_nothing(tiny_files, tmp_path):
    save_native(load_bilm(tiny_files[1], tiny_files[0]), tmp_path)
    assert not (tmp_path / "tokens.json").exists()
    assert token_ids_from_dict(None) == PublishedBytes()


class _WritesAFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_crafted_pickle_is_refused(tmp_path):
    """A .pkl whose unpickling would create a file: refused, named, and the file never appears."""
    folder = tmp_path / "model"
    shutil.copytree(GOLDENS / "efml_small", folder)
    target = tmp_path / "pwned.txt"
    with open(folder / "encoder.pkl", "wb") as out:
        pickle.dump({"forward_layer_0.input_linearity.weight": _WritesAFile(str(target))}, out)
    with pytest.raises(ValueError, match=r"encoder\.pkl: refused"):
        load_bilm(folder)
    assert not target.exists()
    with pytest.raises(ValueError, match=r"encoder\.pkl: refused"):
        load_state(folder / "encoder.pkl")
    assert not target.exists()
    pickle.loads((folder / "encoder.pkl").read_bytes())  # the file really would have been written
    assert target.exists()


@pytest.mark.parametrize("missing", ["config.json", "char.dic", "token_embedder.pkl", "encoder.pkl", "word.dic", "arch_small.json"])
def test_folder_missing_a_file(tmp_path, missing):
    folder = tmp_path / "model"
    shutil.copytree(GOLDENS / "efml_small", folder)
    (folder / missing).unlink()
    with pytest.raises(ValueError) as err:
        load_bilm(folder)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message
    assert missing.split(".")[0] in message


def test_malformed_char_dic_line(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(GOLDENS / "efml_small", folder)
    with open(folder / "char.dic", "a", encoding="utf-8") as out:
        out.write("q\tseven\n")
    with pytest.raises(ValueError, match=r"char\.dic: line \d+ is not 'entry<TAB>id'"):
        load_bilm(folder)


def test_state_dict_disagreeing_with_the_architecture(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(GOLDENS / "efml_small", folder)
    arch = _arch(folder)
    arch["encoder"]["dim"] = 24
    (folder / "arch_small.json").write_text(json.dumps(arch))
    with pytest.raises(ValueError, match=r"encoder\.pkl: weight 'forward_layer_0\.input_linearity\.weight' has shape \(64, 8\)"):
        load_bilm(folder)


def test_unknown_family(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a biLM model folder: expected one of") as err:
        load_bilm(tmp_path)
    assert "\n" not in str(err.value) and "readme.txt" in str(err.value)


from hypothesis import given, settings, strategies as st  # noqa: E402

_EFML_TOKENS = load_bilm(GOLDENS / "efml_small").tokens
_EFML_CHARS = R.read_efml_dic(GOLDENS / "efml_small" / "char.dic")
_EFML_WORDS = R.read_efml_dic(GOLDENS / "efml_small" / "word.dic")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=70), st.sampled_from(["<bos>", "<eos>", "<pad>", "<oov>", "Zürich", "булок"])),
                min_size=1, max_size=6))
def test_token_ids_property(words):
    """Any tokens: the ids are the package's (shifted by one), the word ids its lookup of the cut token."""
    chars, word_ids = _EFML_TOKENS.ids(words)
    for row, word in enumerate(words):
        cut = R.efml_tokens([word], 50)[1]
        assert chars[row].tolist() == [i + 1 for i in R.efml_char_ids(cut, _EFML_CHARS, 50)]
        assert word_ids is not None and word_ids[row] == _EFML_WORDS.get(cut, _EFML_WORDS["<oov>"])
        assert chars[row].min() >= 1 and chars[row].max() < _EFML_TOKENS.n_characters
