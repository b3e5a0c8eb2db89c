"""Spark (a real local[2] session, started and stopped here): :func:`embed_dataframe` gives the rows of
:meth:`Embedder.embed`, loading one biLM per Python worker; Spark reads ``embed``'s default output (and refuses
the float16 opt-in, as docs/embedding.md says); ``--engine spark`` writes the files of the local run."""
import json
import os
import shutil
import sys

import numpy
import pytest
import spacy

from spacy_elmo.bilm import Embedder
from spacy_elmo.embedding import EmbedSettings, embed_corpus, embed_dataframe
from spacy_elmo.embedding.spark import embed_corpus_on_spark
from spacy_elmo.io import load_bilm

pyspark = pytest.importorskip("pyspark")
pq = pytest.importorskip("pyarrow.parquet")
pytestmark = pytest.mark.slow

LINES = ["They can't trust their friends.", "He has a trust fund.", "ELMo is back!", "Red mat under tree.",
         "A dog ran after the cat and the cat ran up a tree .", ""] * 3
WIDTH = 32


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        if os.environ.get("CI"):  # CI installs Java (scripts/setup.sh): missing there, it is a failure
            pytest.fail("no Java runtime: scripts/setup.sh installs one (openjdk-17-jre-headless)")
        pytest.skip("no Java runtime (apt-get install openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this venv's Python (Spark's default: python3)
    session = (SparkSession.builder.master("local[2]").appName("spacy-elmo tests")
               .config("spark.driver.memory", "1g").config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false").config("spark.sql.execution.arrow.maxRecordsPerBatch", "5")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if before is None:
        del os.environ["PYSPARK_PYTHON"]
    else:
        os.environ["PYSPARK_PYTHON"] = before


@pytest.fixture(scope="module")
def expected(tiny_files):
    """Each line's spaCy tokens and float32 layers from :meth:`Embedder.embed`."""
    nlp = spacy.blank("en")
    tokens = [[t.text for t in nlp(line) if not t.is_space] for line in LINES]
    embedder = Embedder(load_bilm(tiny_files[1], tiny_files[0]))
    return tokens, [embedder.embed([t])[0] if t else numpy.zeros((3, 0, WIDTH), numpy.float32) for t in tokens]


def layers_of(row, names=("layer_0", "layer_1", "layer_2")) -> numpy.ndarray:
    return numpy.stack([numpy.asarray(row[n], numpy.float32).reshape(-1, WIDTH) for n in names])


def check(rows, expected, tol):
    tokens, layers = expected
    assert sorted(r["id"] for r in rows) == list(range(len(LINES)))
    for row in rows:
        i = row["id"]
        assert list(row["tokens"]) == tokens[i]
        got = layers_of(row)
        assert got.shape == layers[i].shape
        assert numpy.abs(got - layers[i]).max(initial=0) <= tol


def test_embed_dataframe_gives_the_rows_of_embedder(spark, tiny_files, expected, tmp_path):
    options, weights = tiny_files
    df = spark.createDataFrame([(i, line) for i, line in enumerate(LINES)], "id long, text string").repartition(3)
    out = embed_dataframe(df, weights, options, batch_size=4, device="cpu")
    assert out.columns == ["id", "text", "tokens", "layer_0", "layer_1", "layer_2"]
    assert out.schema["layer_0"].dataType.simpleString() == "array<array<float>>"
    assert out.schema["tokens"].dataType.simpleString() == "array<string>"
    # other batch-mates than a sentence alone: equal up to float32 rounding of other product shapes
    check(out.collect(), expected, 4e-6)
    # the rest of Spark just works: written as Parquet by Spark, read back by pyarrow, as a CLI shard is
    out.write.parquet(str(tmp_path / "spark.parquet"))
    table = pq.read_table(tmp_path / "spark.parquet")
    check(table.to_pylist(), expected, 4e-6)


def test_tokens_column_and_one_bilm_per_python_worker(spark, tiny_files, expected):
    options, weights = tiny_files
    tokens, _ = expected
    df = spark.createDataFrame([(i, t) for i, t in enumerate(tokens)], "id long, tokens array<string>").repartition(6)
    out = embed_dataframe(df, weights, options, batch_size=2, device="cpu", window=4)
    assert out.columns == ["id", "tokens", "layer_0", "layer_1", "layer_2"]
    rows = out.collect()
    long_line = next(r for r in rows if len(r["tokens"]) > 4)  # read in windows of 4, joined along the tokens
    assert len(long_line["tokens"]) == len(tokens[long_line["id"]])
    assert layers_of(long_line).shape == (3, len(long_line["tokens"]), WIDTH)

    # 6 partitions of batches of 2 rows ran on the 2 task slots' Python workers, which Spark keeps: ask them
    # what they loaded. Each loaded every biLM it holds once (one with this test's settings, maybe one with
    # another test's): a worker that loaded per batch or per task would have loaded more than it holds
    def loads(batches):  # through mapInArrow too: Spark keeps other Python workers for RDDs than for SQL
        import pyarrow as pa

        from spacy_elmo.embedding import spark as module

        for _ in batches:
            pass
        window_4 = any(dict(key[3])["window"] == 4 for key in module._WORKERS)  # key[3]: the settings
        yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "loads": [module.LOADS],
                                          "held": [len(module._WORKERS)], "window_4": [window_4]})

    probe = spark.range(0, 6, numPartitions=6).mapInArrow(loads, "pid long, loads long, held long, window_4 boolean")
    workers = probe.collect()
    assert all(r["loads"] == r["held"] for r in workers), workers
    assert any(r["window_4"] for r in workers), workers


def test_weights_shipped_by_spark(spark, tiny_files, expected, tmp_path):
    options, weights = tiny_files
    # copies under other names than any earlier run: each Python worker loads them afresh, from SparkFiles
    shipped_weights, shipped_options = tmp_path / "shipped.hdf5", tmp_path / "shipped_options.json"
    shutil.copy(weights, shipped_weights)
    shutil.copy(options, shipped_options)
    df = spark.createDataFrame([(i, line) for i, line in enumerate(LINES)], "id long, text string")
    out = embed_dataframe(df, shipped_weights, shipped_options, ship=True, device="cpu")
    # the workers are told the files' names only, and find Spark's copies (a relative name alone: not found)
    check(out.collect(), expected, 4e-6)


def test_spark_reads_the_default_output_and_refuses_float16(spark, tiny_files, expected, tmp_path):
    options, weights = tiny_files
    (tmp_path / "in.txt").write_text("\n".join(LINES) + "\n")
    for name, dtype in (("default", None), ("half", "float16")):
        settings = EmbedSettings(shard_lines=7) if dtype is None else EmbedSettings(shard_lines=7, dtype=dtype)
        embed_corpus([tmp_path / "in.txt"], tmp_path / name, weights, options, settings, device="cpu",
                     say=lambda _: None)
    frame = spark.read.parquet(str(tmp_path / "default" / "shards"))
    assert frame.schema["layer_2"].dataType.simpleString() == "array<array<float>>"
    rows = [dict(r.asDict(), id=r["line"]) for r in frame.collect()]
    tokens, layers = expected
    assert sorted(r["line"] for r in rows) == [i for i, t in enumerate(tokens) if t]  # blank lines are skipped
    for row in rows:
        assert list(row["tokens"]) == tokens[row["line"]]
        assert numpy.array_equal(layers_of(row), layers[row["line"]])  # float32 as stored: exact
    # the float16 opt-in: Spark (4.x) refuses Parquet FLOAT16, which is why it is not the default
    with pytest.raises(Exception, match="FLOAT16|Float16|float16"):
        spark.read.parquet(str(tmp_path / "half" / "shards")).collect()


def test_engine_spark_writes_the_files_of_the_local_run(spark, tiny_files, tmp_path):
    from typer.testing import CliRunner

    from spacy_elmo.cli import app

    options, weights = tiny_files
    corpus = tmp_path / "in.txt"
    corpus.write_text("\n".join(LINES) + "\n")
    settings = EmbedSettings(shard_lines=5, chunk_tokens=20)
    embed_corpus([corpus], tmp_path / "local", weights, options, settings, device="cpu", say=lambda _: None)
    # the CLI on the active session (the fixture's local[2]): a task per shard
    result = CliRunner().invoke(app, ["embed", str(corpus), "-w", str(weights), "-c", str(options), "-o",
                                      str(tmp_path / "spark"), "--shard-lines", "5", "--chunk-tokens", "20",
                                      "--engine", "spark", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Spark (local[2]): 4 shard(s)" in result.output
    manifest = json.loads((tmp_path / "spark" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == len([x for x in LINES if x])
    shards = sorted((tmp_path / "local" / "shards").iterdir())
    assert len(shards) == 4
    for path in shards:
        assert path.read_bytes() == (tmp_path / "spark" / "shards" / path.name).read_bytes()
    # the Python API, resumed: every shard is finished, nothing is embedded again
    again = embed_corpus_on_spark([corpus], tmp_path / "spark", weights, options, settings, resume=True,
                                  device="cpu", say=lambda _: None)
    assert again["manifest"]["rows"] == manifest["rows"]


def test_bad_calls_are_one_clear_error_on_the_driver(spark, tiny_files, tmp_path):
    options, weights = tiny_files
    df = spark.createDataFrame([(1, "x")], "id long, body string")
    with pytest.raises(ValueError, match=r"needs a 'text' or 'tokens' column; the DataFrame has \['id', 'body'\]"):
        embed_dataframe(df, weights, options)
    texts = df.withColumnRenamed("body", "text")
    with pytest.raises(ValueError, match="Spark has no float16 type"):
        embed_dataframe(texts, weights, options, dtype="float16")
    with pytest.raises(ValueError, match="needs its options.json"):
        embed_dataframe(texts, weights)
    with pytest.raises(FileNotFoundError, match="ELMo weights not found: .*missing.hdf5"):
        embed_dataframe(texts, tmp_path / "missing.hdf5", options)
