"""``embed``: files read back without spacy-elmo equal Embedder.embed; the old allennlp HDF5 layout; bad input;
resume checks; atomic files with ordinary permissions."""
import json
import os
import stat
from pathlib import Path

import h5py
import numpy
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import spacy
from hypothesis import given, settings as hsettings, strategies as st
from typer.testing import CliRunner

import reference_math as R
from spacy_elmo.bilm import Embedder
from spacy_elmo.embedding import EmbedSettings, embed_corpus
from spacy_elmo.embedding.shards import plan_shards, shard_items
from spacy_elmo.io import load_bilm
from spacy_elmo.pretraining.corpus import MAX_LINE_BYTES, CorpusStats

LINES = ["They can't trust their friends.", "He has a trust fund.", "ELMo is back!", "He has a trust fund.",
         "A much longer line , with more words than the window holds , so it is read in pieces and joined ."]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


def run(tiny_files, inputs, output, **kwargs):
    options, weights = tiny_files
    resume = kwargs.pop("resume", False)
    return embed_corpus(inputs, output, weights, options, EmbedSettings(**kwargs), resume=resume, device="cpu",
                        say=lambda _: None)


def embedder(tiny_files, **kwargs) -> Embedder:
    options, weights = tiny_files
    return Embedder(load_bilm(weights, options), **kwargs)


def spacy_tokens(lines):
    nlp = spacy.blank("en")
    return [[t.text for t in nlp(line) if not t.is_space] for line in lines]


def read_parquet_rows(directory: Path):
    """pyarrow alone: every shard's rows, as numpy ``[L, n, 2P]``."""
    table = pq.read_table(directory / "shards")
    columns = [c for c in table.column_names if c.startswith("layer_")]
    rows = []
    for i in range(table.num_rows):
        layers = [numpy.asarray(table.column(c)[i].values.flatten().to_numpy(zero_copy_only=False))
                  .reshape(len(table.column("tokens")[i]), -1) for c in columns]
        rows.append((table.column("file")[i].as_py(), table.column("line")[i].as_py(),
                     table.column("tokens")[i].as_py(), numpy.stack(layers)))
    return rows


def test_parquet_float32_equals_embedder_exactly(tiny_files, corpus, tmp_path):
    result = run(tiny_files, [corpus], tmp_path / "out", dtype="float32", window=8)
    rows = read_parquet_rows(tmp_path / "out")
    tokens = spacy_tokens(LINES)
    assert [(f, line, t) for f, line, t, _ in rows] == [(str(corpus), i, t) for i, t in enumerate(tokens)]
    # the long line is read in windows of at most 8 tokens, each on its own, joined along the tokens
    pieces = [t[i : i + 8] for t in tokens for i in range(0, len(t), 8)]
    assert len(pieces) > len(tokens)
    want = iter(embedder(tiny_files).embed(pieces))
    for (_, _, words, got) in rows:
        expected = numpy.concatenate([next(want) for _ in range(0, len(words), 8)], axis=1)
        assert got.dtype == numpy.float32 and got.shape == (3, len(words), 32)
        assert numpy.array_equal(got, expected)
    assert result["manifest"]["rows"] == 5 and result["manifest"]["tokens"] == sum(map(len, tokens))
    assert result["stats"].windowed == 1


def test_parquet_float16_is_the_rounding_of_the_exact_vectors(tiny_files, corpus, tmp_path, tiny_opts, tiny_arrays):
    run(tiny_files, [corpus], tmp_path / "out", dtype="float16")
    rows = read_parquet_rows(tmp_path / "out")
    exact = embedder(tiny_files).embed(spacy_tokens(LINES))
    for (_, _, words, got), want in zip(rows, exact):
        assert got.dtype == numpy.float16
        assert numpy.array_equal(got, want.astype(numpy.float16))
        # within half a float16 ulp of the float32 vectors (relative 2^-11; absolute 2^-25 for subnormals)
        assert numpy.all(numpy.abs(got.astype(numpy.float32) - want) <= numpy.abs(want) * 2.0**-11 + 2.0**-25)
        # and the float32 vectors are the published maths (independent float64 numpy)
        assert numpy.abs(want - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4


@pytest.mark.parametrize("layers", ["top", "average"])
def test_parquet_top_and_average(tiny_files, corpus, tmp_path, layers):
    run(tiny_files, [corpus], tmp_path / "out", layers=layers, dtype="float32")
    table = pq.read_table(tmp_path / "out" / "shards")
    assert table.column_names == ["file", "line", "tokens", layers]
    exact = embedder(tiny_files).embed(spacy_tokens(LINES))
    for i, want in enumerate(exact):
        got = table.column(layers)[i].values.flatten().to_numpy().reshape(-1, 32)
        assert numpy.array_equal(got, want[-1] if layers == "top" else numpy.average(want, axis=0))


def test_manifest_and_expected_size(tiny_files, corpus, tmp_path):
    messages = []
    options, weights = tiny_files
    embed_corpus([corpus], tmp_path / "out", weights, options, EmbedSettings(shard_lines=2), device="cpu",
                 say=messages.append)
    assert messages[0].startswith("Expected size: about") and "384 bytes" in messages[0]  # 3 x 32 x float32
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    import hashlib

    assert manifest["weights_sha256"] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    assert manifest["options"]["lstm"]["projection_dim"] == 16 and manifest["complete"]
    assert manifest["settings"]["dtype"] == "float32" and manifest["settings"]["shard_lines"] == 2
    assert [(s["first_line"], s["lines"], s["rows"]) for s in manifest["shards"]] == [(0, 2, 2), (2, 2, 2), (4, 1, 1)]
    for shard in manifest["shards"]:
        assert pq.read_metadata(tmp_path / "out" / shard["file"]).num_rows == shard["rows"]


def test_files_have_ordinary_permissions_and_no_leftovers(tiny_files, corpus, tmp_path):
    old = os.umask(0o022)
    try:
        run(tiny_files, [corpus], tmp_path / "out")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)
    assert not [p for p in files if ".tmp-" in p.name]


def test_hdf5_layout_of_the_old_allennlp_elmo_command(tiny_files, tmp_path):
    """AllenNLP 0.9 ``allennlp elmo``: a float32 dataset per line named str(line index), [3, n, 2P] (--all) or
    [n, 2P] (--top, --average: numpy.average over the layers), and ``sentence_to_index``: shape (1,), a
    variable-length str dtype, holding json.dumps of {stripped line: key}, a repeated line mapping to its
    last key. Lines are whitespace-tokenised (--tokenized). Here shards of 2 lines behind one file per input."""
    lines = ["The cat sat .", "a b", "The cat sat .", "  x y z  ", "é ü"]
    path = tmp_path / "sents.txt"
    path.write_text("\n".join(lines) + "\n")
    run(tiny_files, [path], tmp_path / "all", format="hdf5", tokenized=True, shard_lines=2)
    run(tiny_files, [path], tmp_path / "top", format="hdf5", tokenized=True, layers="top")
    run(tiny_files, [path], tmp_path / "avg", format="hdf5", tokenized=True, layers="average")
    exact = embedder(tiny_files).embed([line.split() for line in lines])
    for name, pick in (("all", lambda a: a), ("top", lambda a: a[-1]), ("avg", lambda a: numpy.average(a, axis=0))):
        with h5py.File(tmp_path / name / "sents.hdf5", "r") as f:
            assert sorted(f.keys()) == sorted([str(i) for i in range(5)] + ["sentence_to_index"])
            for i, want in enumerate(exact):
                assert f[str(i)].dtype == numpy.float32
                assert numpy.array_equal(f[str(i)][...], pick(want))
            index = f["sentence_to_index"]
            assert index.shape == (1,) and h5py.check_string_dtype(index.dtype).length is None
            text = index[0].decode() if isinstance(index[0], bytes) else index[0]
            assert text == json.dumps({"The cat sat .": "2", "a b": "1", "x y z": "3", "é ü": "4"})
    with h5py.File(tmp_path / "all" / "sents.hdf5", "r") as f:
        assert f["3"].shape == (3, 3, 32)
        assert len(list((tmp_path / "all" / "shards").glob("*.hdf5"))) == 3
        assert f.get("3", getlink=True).filename == "shards/shard-00001.hdf5"  # an external link, nothing copied


def test_bad_input_is_counted_skipped_and_cut(tiny_files, tmp_path):
    path = tmp_path / "bad.txt"
    long_line = ("word " * (MAX_LINE_BYTES // 5 + 100)).encode()
    path.write_bytes(b"good line one\n\n   \n\xff\xfe broken\nbin\x00ary\n" + long_line + b"\ngood line two\n")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"text": "from text"}\nnot json\n{"tokens": ["from", "tokens"]}\n{"tokens": []}\n{"x": 1}\n')
    result = run(tiny_files, [path, jsonl], tmp_path / "out", window=64, chunk_tokens=500)
    stats = result["stats"]
    assert (stats.lines, stats.blank, stats.undecodable, stats.binary, stats.bad_json, stats.cut) == (5, 3, 1, 1, 2, 1)
    assert "3 blank skipped" in stats.summary() and "1 over-long cut" in stats.summary()
    rows = read_parquet_rows(tmp_path / "out")
    assert [(Path(f).name, line) for f, line, _, _ in rows] == [
        ("bad.txt", 0), ("bad.txt", 5), ("bad.txt", 6), ("more.jsonl", 0), ("more.jsonl", 2)]
    assert rows[1][2][:2] == ["word", "word"] and len(rows[1][2]) == MAX_LINE_BYTES // 5
    assert rows[4][2] == ["from", "tokens"]


@hsettings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "\x00", "\ud800x", "a b"])), max_size=12),
       st.integers(1, 4))
def test_shard_line_numbers_cover_every_line_once(tmp_path_factory, lines, shard_lines):
    path = tmp_path_factory.mktemp("lines") / "x.txt"
    path.write_bytes("\n".join(lines).encode("utf8", "surrogatepass"))
    if not path.stat().st_size:
        return
    shards = plan_shards([path], shard_lines)
    stats = CorpusStats()
    numbered = [n for s in shards for n in shard_items(s, stats)]
    physical = path.read_bytes().split(b"\n")
    physical = physical[:-1] if physical[-1] == b"" else physical
    assert sum(s.lines for s in shards) == len(physical)
    assert [line for line, _ in numbered] == sorted({line for line, _ in numbered})
    assert stats.lines + stats.skipped == len(physical)
    for line, text in numbered:
        assert physical[line].decode("utf8").strip() == text


def test_spacy_input_and_model_sentences(tiny_files, tmp_path):
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    DocBin(docs=[nlp("Red mat under tree."), nlp(" "), nlp("Big dog")]).to_disk(tmp_path / "d.spacy")
    run(tiny_files, [tmp_path / "d.spacy"], tmp_path / "sp", dtype="float32")
    rows = read_parquet_rows(tmp_path / "sp")
    assert [(line, t) for _, line, t, _ in rows] == [(0, ["Red", "mat", "under", "tree", "."]), (2, ["Big", "dog"])]
    # --model: a saved pipeline's sentence boundaries; each sentence is read on its own
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "model")
    (tmp_path / "two.txt").write_text("One sentence here. And another one!\n")
    result = run(tiny_files, [tmp_path / "two.txt"], tmp_path / "m", dtype="float32", model=str(tmp_path / "model"))
    (_, _, words, got), = read_parquet_rows(tmp_path / "m")
    first, second = embedder(tiny_files).embed([words[:4], words[4:]])
    assert numpy.array_equal(got, numpy.concatenate([first, second], axis=1))
    assert result["stats"].windowed == 1


def test_resume_checks_the_run(tiny_files, corpus, tmp_path):
    run(tiny_files, [corpus], tmp_path / "out")
    with pytest.raises(ValueError, match="already holds an embedding run"):
        run(tiny_files, [corpus], tmp_path / "out")
    with pytest.raises(ValueError, match="differs in 'settings'"):
        run(tiny_files, [corpus], tmp_path / "out", window=64, resume=True)
    before = (tmp_path / "out" / "shards" / "shard-00000.parquet").stat().st_mtime_ns
    run(tiny_files, [corpus], tmp_path / "out", resume=True, max_batch_tokens=64)  # batching: not a setting of the output
    assert (tmp_path / "out" / "shards" / "shard-00000.parquet").stat().st_mtime_ns == before


def test_cli_embed_and_its_errors(tiny_files, corpus, tmp_path, monkeypatch):
    from spacy_elmo.cli import app

    options, weights = tiny_files
    args = ["embed", str(corpus), "-w", str(weights), "-c", str(options), "-o", str(tmp_path / "out")]
    ok = CliRunner().invoke(app, args + ["--format", "hdf5", "--layers", "top"])
    assert ok.exit_code == 0, ok.output
    assert "Expected size" in ok.output and "Embedded 5 lines" in ok.output and "5 lines used" in ok.output
    bad = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "b"), "--layers", "middle"])
    assert bad.exit_code == 1 and "--layers must be one of all, top, average" in bad.output
    no_options = CliRunner().invoke(app, args[:4] + ["-o", str(tmp_path / "c")])
    assert no_options.exit_code == 1 and "needs its options.json" in no_options.output
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    no_ray = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "d"), "--engine", "ray"])
    assert no_ray.exit_code == 1 and "not installed: pip install 'spacy-elmo[ray]'" in " ".join(no_ray.output.split())
