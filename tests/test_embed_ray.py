"""Ray: ``--engine ray`` writes the files of the local run, and :func:`embed_dataset` on a Ray Dataset of texts
gives the CLI's rows (a local Ray of 2 CPUs, started and stopped here)."""
import numpy
import pyarrow.parquet as pq
import pytest
import ray

from spacy_elmo.embedding import EmbedSettings, embed_corpus, embed_dataset
from spacy_elmo.embedding.ray_data import embed_corpus_on_ray

pytestmark = pytest.mark.slow

LINES = ["They can't trust their friends.", "He has a trust fund.", "ELMo is back!", "Red mat under tree.",
         "A dog ran after the cat and the cat ran up a tree ."] * 4


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_ray_engine_writes_the_files_of_the_local_run(local_ray, tiny_files, corpus, tmp_path):
    options, weights = tiny_files
    settings = EmbedSettings(shard_lines=6, chunk_tokens=20)
    embed_corpus([corpus], tmp_path / "local", weights, options, settings, device="cpu", say=lambda _: None)
    result = embed_corpus_on_ray([corpus], tmp_path / "ray", weights, options, settings, workers=2,
                                 cpus_per_worker=0.5, device="cpu", say=lambda _: None)
    assert result["manifest"]["complete"] and result["manifest"]["rows"] == len(LINES)
    shards = sorted((tmp_path / "local" / "shards").iterdir())
    assert len(shards) == 4
    for path in shards:
        assert path.read_bytes() == (tmp_path / "ray" / "shards" / path.name).read_bytes()


def test_embed_dataset_gives_the_rows_of_the_cli(local_ray, tiny_files, corpus, tmp_path):
    options, weights = tiny_files
    embed_corpus([corpus], tmp_path / "cli", weights, options, EmbedSettings(dtype="float32"), device="cpu",
                 say=lambda _: None)
    cli = pq.read_table(tmp_path / "cli" / "shards")
    ds = ray.data.from_items([{"id": i, "text": line} for i, line in enumerate(LINES)])
    out = embed_dataset(ds, weights, options, dtype="float32", batch_size=7, concurrency=2, num_cpus=0.5, device="cpu")
    import pyarrow as pa

    table = pa.concat_tables(ray.get(out.to_arrow_refs())).sort_by("id")  # the column types as written
    assert table.column("id").to_pylist() == list(range(len(LINES)))
    assert table.column_names == ["id", "text", "tokens", "layer_0", "layer_1", "layer_2"]
    assert table.schema.field("layer_0").type == cli.schema.field("layer_0").type
    for i in range(len(LINES)):
        assert table.column("tokens")[i].as_py() == cli.column("tokens")[i].as_py()
        for name in ("layer_0", "layer_1", "layer_2"):
            got, want = (t.column(name)[i].values.flatten().to_numpy().reshape(-1, 32) for t in (table, cli))
            # other batch-mates than the CLI's chunk: equal up to float32 rounding of other product shapes
            assert got.dtype == numpy.float32 and numpy.abs(got - want).max() <= 4e-6


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_ray_reads_the_default_output_and_the_float16_opt_in(local_ray, tiny_files, corpus, tmp_path, dtype):
    options, weights = tiny_files
    settings = EmbedSettings(shard_lines=6) if dtype == "float32" else EmbedSettings(shard_lines=6, dtype=dtype)
    assert settings.dtype == dtype  # float32 is the default
    embed_corpus([corpus], tmp_path / "out", weights, options, settings, device="cpu", say=lambda _: None)
    want = pq.read_table(tmp_path / "out" / "shards").sort_by("line")
    import pyarrow as pa

    got = pa.concat_tables(ray.get(ray.data.read_parquet(str(tmp_path / "out" / "shards")).to_arrow_refs()))
    got = got.sort_by("line")
    assert got.column("line").to_pylist() == list(range(len(LINES)))
    for name in ("tokens", "layer_0", "layer_1", "layer_2"):
        assert got.schema.field(name).type == want.schema.field(name).type  # float16 read as float16
        assert got.column(name).to_pylist() == want.column(name).to_pylist()
