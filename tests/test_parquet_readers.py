"""The readers docs/embedding.md names: ``embed``'s default Parquet output (float32) read back by pyarrow,
pandas and DuckDB equals :meth:`Embedder.embed`; the float16 opt-in is read by the readers its help names.
(Spark: tests/test_embed_spark.py; Ray: tests/test_embed_ray.py, both slow.)"""
import numpy
import pytest
import spacy

from spacy_elmo.bilm import Embedder
from spacy_elmo.embedding import EmbedSettings, embed_corpus
from spacy_elmo.embedding.settings import FLOAT16_READERS
from spacy_elmo.io import load_bilm

pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")
duckdb = pytest.importorskip("duckdb")

LINES = ["They can't trust their friends.", "He has a trust fund.", "ELMo is back!", "Red mat under tree ."]


@pytest.fixture(scope="module")
def expected(tiny_files):
    nlp = spacy.blank("en")
    tokens = [[t.text for t in nlp(line)] for line in LINES]
    return tokens, Embedder(load_bilm(tiny_files[1], tiny_files[0])).embed(tokens)


def embed(tiny_files, tmp_path, **settings):
    (tmp_path / "in.txt").write_text("\n".join(LINES) + "\n")
    options, weights = tiny_files
    embed_corpus([tmp_path / "in.txt"], tmp_path / "out", weights, options, EmbedSettings(shard_lines=3, **settings),
                 device="cpu", say=lambda _: None)
    return tmp_path / "out" / "shards"


@pytest.fixture(scope="module")
def default_output(tiny_files, tmp_path_factory):
    return embed(tiny_files, tmp_path_factory.mktemp("default"))


def check_rows(rows, expected, dtype):
    """``rows``: (line, tokens, [L, n, 2P] array) in any order, against the float32 vectors, rounded to ``dtype``."""
    tokens, layers = expected
    assert sorted(r[0] for r in rows) == list(range(len(LINES)))
    for line, words, got in rows:
        assert list(words) == tokens[line]
        assert got.dtype == dtype and numpy.array_equal(got, layers[line].astype(dtype))


def test_default_dtype_is_float32_which_every_reader_reads():
    assert EmbedSettings().dtype == "float32" and EmbedSettings(format="hdf5").dtype == "float32"
    assert "not Spark" in FLOAT16_READERS


def test_pyarrow_reads_the_default_output(default_output, expected):
    table = pq.read_table(default_output)
    vectors = table.schema.field("layer_0").type  # list<fixed_size_list<float, 32>>
    assert vectors.value_type.list_size == 32 and str(vectors.value_type.value_type) == "float"
    rows = [(table["line"][i].as_py(), table["tokens"][i].as_py(),
             numpy.stack([table[f"layer_{j}"][i].values.flatten().to_numpy().reshape(-1, 32) for j in range(3)]))
            for i in range(table.num_rows)]
    check_rows(rows, expected, numpy.float32)


def pandas_rows(directory):
    frame = pd.read_parquet(directory)
    assert list(frame.columns) == ["file", "line", "tokens", "layer_0", "layer_1", "layer_2"]
    return [(int(r.line), list(r.tokens), numpy.stack([numpy.stack(list(r[f"layer_{j}"])) for j in range(3)]))
            for _, r in frame.iterrows()]


def duckdb_rows(directory):
    con = duckdb.connect()
    result = con.execute(f"SELECT line, tokens, layer_0, layer_1, layer_2 FROM '{directory}/*.parquet'").fetchall()
    assert con.execute(f"SELECT count(*) FROM '{directory}/*.parquet'").fetchone() == (len(LINES),)
    con.close()
    # DuckDB hands floats to Python as doubles: the stored values, widened exactly
    return [(line, words, numpy.asarray(layers, numpy.float64)) for line, words, *layers in result]


def test_pandas_reads_the_default_output(default_output, expected):
    check_rows(pandas_rows(default_output), expected, numpy.float32)


def test_duckdb_reads_the_default_output(default_output, expected):
    rows = duckdb_rows(default_output)
    check_rows([(line, words, got.astype(numpy.float32)) for line, words, got in rows], expected, numpy.float32)
    # and nothing was lost on the way: float32 widened to float64 and back is exact
    assert all(numpy.array_equal(got, got.astype(numpy.float32).astype(numpy.float64)) for _, _, got in rows)


def test_float16_opt_in_is_read_by_pandas_and_duckdb(tiny_files, tmp_path, expected):
    shards = embed(tiny_files, tmp_path, dtype="float16")
    assert str(pq.read_schema(next(shards.iterdir())).field("layer_0").type.value_type.value_type) == "halffloat"
    check_rows(pandas_rows(shards), expected, numpy.float16)
    rows = duckdb_rows(shards)
    check_rows([(line, words, got.astype(numpy.float16)) for line, words, got in rows], expected, numpy.float16)
