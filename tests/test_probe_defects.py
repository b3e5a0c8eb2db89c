"""The defects a probe of the released package found (issue 28), each refused or fixed at its door."""
import json

import pytest
from typer.testing import CliRunner

import reference_math as R
from spacy_elmo.bilm import BiLMOptions
from spacy_elmo.bilm.model import BiLM
from spacy_elmo.bilm.options import preset
from spacy_elmo.cli import app
from helpers import said, synthetic_corpus


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# options: sizes have upper bounds, and a size is a JSON integer ------------------------------------------------

HUGE = [
    (("lstm", "dim"), 1e9, "'lstm.dim' must be a positive integer of at most 32768, got 1000000000.0 (float)"),
    (("lstm", "dim"), 10**9, "'lstm.dim' must be a positive integer of at most 32768, got 1000000000 (int)"),
    (("lstm", "projection_dim"), 1e9, "'lstm.projection_dim' must be a positive integer of at most 8192"),
    (("char_cnn", "filters"), [[1, 2 * 10**9]], "count at most 16384"),
    (("char_cnn", "n_highway"), 1000, "'char_cnn.n_highway' must be an integer >= 0 of at most 16"),
    (("lstm", "n_layers"), 10**6, "'lstm.n_layers' must be a positive integer of at most 16"),
    (("char_cnn", "filters"), [[7, 16384]] * 7, "make a biLM of 26,312,085,032 parameters, over the limit of 2,000,000,000"),  # each count allowed, the total not
]


@pytest.mark.parametrize("place,value,message", HUGE)
def test_huge_sizes_are_refused_at_every_door(tiny_opts, tiny_files, tmp_path, place, value, message):
    data = json.loads(json.dumps(tiny_opts))
    data[place[0]][place[1]] = value
    path = tmp_path / "options.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=str(path)) as err:
        BiLMOptions.from_file(path)
    assert message in str(err.value)
    corpus = synthetic_corpus(tmp_path, 20)
    for args in (("pretrain", corpus, "-o", tmp_path / "out", "-c", path, "--max-steps", "1"),
                 ("info", tiny_files[1], "--options", path),
                 ("embed", corpus, "--weights", tiny_files[1], "--options", path, "-o", tmp_path / "vectors")):
        result = invoke(*args)
        assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit), args
        text = said(result)
        assert str(path) in text and message in text, (args, text)
        assert "Traceback" not in result.output


def test_the_parameter_count_of_the_options_is_the_models():
    for name in ("tiny", "small", "original"):
        options = preset(name)
        assert options.n_parameters == sum(p.numel() for p in BiLM(options).parameters()), name
    assert preset("original").n_parameters < 100_000_000  # 93.6M published


def test_integral_floats_within_the_bounds_are_still_integers(tiny_opts):
    data = json.loads(json.dumps(tiny_opts))
    data["lstm"]["dim"] = 32.0
    assert BiLMOptions.from_dict(data).lstm.dim == 32


def test_published_sizes_still_load():
    for n_highway, dim, proj in ((1, 1024, 128), (1, 2048, 256), (2, 4096, 512)):
        data = R.options_dict(dim, proj, n_highway, [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]], 16)
        assert BiLMOptions.from_dict(data).lstm.dim == dim


# weight files: floating-point datasets only ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_hdf5_dataset_of_integers_is_refused(tiny_opts, tiny_arrays, tmp_path, dtype):
    from spacy_elmo.io import load_bilm

    arrays = dict(tiny_arrays, **{"CNN_proj/W_proj": (tiny_arrays["CNN_proj/W_proj"] * 10).astype(dtype)})
    options, weights = R.write_published(tmp_path, tiny_opts, arrays)
    with pytest.raises(ValueError, match=f"{weights}: dataset 'CNN_proj/W_proj' holds {dtype} values, not floating"):
        load_bilm(weights, options)
    result = invoke("info", weights, "--options", options)
    assert result.exit_code == 1 and "not floating-point numbers" in said(result)


def test_hdf5_of_float16_and_float64_still_loads(tiny_opts, tiny_arrays, tmp_path):
    from spacy_elmo.io import load_bilm

    arrays = dict(tiny_arrays, **{"CNN_proj/W_proj": tiny_arrays["CNN_proj/W_proj"].astype("float64"),
                                  "CNN_proj/b_proj": tiny_arrays["CNN_proj/b_proj"].astype("float16")})
    options, weights = R.write_published(tmp_path, tiny_opts, arrays)
    load_bilm(weights, options)


# embed on .jsonl: a field of the wrong type is a malformed record (skipped and counted), never the other field

def test_jsonl_fields_of_the_wrong_type_are_skipped_and_counted(tiny_files, tmp_path):
    from spacy_elmo.pretraining.corpus import CorpusStats, read_items

    path = tmp_path / "in.jsonl"
    path.write_text('{"tokens": "not a list"}\n{"text": ["a", "b"]}\n{"text": "kept text"}\n{"tokens": ["kept", "words"]}\n'
                    '{"text": null, "tokens": ["x"]}\n{"tokens": ["a", 1]}\n')
    stats = CorpusStats()
    assert [item for _, item in read_items(path, 0, stats)] == ["kept text", ["kept", "words"]]
    assert (stats.lines, stats.bad_json) == (2, 4)
    assert "4 bad JSON records (not JSON, or no string 'text' / list-of-strings 'tokens') skipped" in stats.summary()
    options, weights = tiny_files
    result = invoke("embed", path, "-w", weights, "-c", options, "-o", tmp_path / "out")
    assert result.exit_code == 0, said(result)
    assert "Embedded 2 lines (4 tokens)" in said(result) and "4 bad JSON records" in said(result)


# messages --------------------------------------------------------------------------------------------------

def test_embed_names_its_own_option(tiny_files, tmp_path):
    corpus = synthetic_corpus(tmp_path, 3)
    options, weights = tiny_files
    result = invoke("embed", corpus, "-w", weights, "-c", options, "-o", tmp_path / "out", "--batch-tokens", "-5")
    assert result.exit_code == 1 and "--batch-tokens must be positive, got -5" in said(result)
    assert "--max-batch-tokens" not in result.output


def test_a_symbolic_link_loop_is_named_as_one(tiny_files, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    corpus = synthetic_corpus(tmp_path, 3)
    for args in (("info", loop), ("convert", loop, tmp_path / "native"),
                 ("embed", corpus, "-w", loop, "-c", tiny_files[0], "-o", tmp_path / "out"),
                 ("embed", loop, "-w", tiny_files[1], "-c", tiny_files[0], "-o", tmp_path / "out2")):
        result = invoke(*args)
        text = said(result)
        assert result.exit_code == 1 and (f"{loop} is a symbolic link loop" in text
                                          or f"{loop}: Too many levels of symbolic links" in text), (args, text)
        assert "not found" not in text and "No " not in text


def test_output_naming_an_existing_file(tiny_files, tmp_path):
    corpus = synthetic_corpus(tmp_path, 3)
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    result = invoke("embed", corpus, "-w", tiny_files[1], "-c", tiny_files[0], "-o", existing)
    assert result.exit_code == 1 and f"--output {existing} is a file, not a directory" in said(result)
    assert "Not a directory" not in result.output and existing.read_text() == "keep me"


# the size estimate and the progress bar count the tokens that are embedded ------------------------------------

def run_embed(tiny_files, inputs, output, **settings):
    from spacy_elmo.embedding import EmbedSettings, embed_corpus

    messages = []
    options, weights = tiny_files
    embed_corpus(inputs, output, weights, options, EmbedSettings(**settings), device="cpu", say=messages.append)
    return messages, json.loads((output / "manifest.json").read_text())


@pytest.mark.parametrize("settings", [{}, {"tokenized": True}], ids=["tokenizer", "tokenized"])
def test_the_estimate_counts_what_is_embedded(tiny_files, tmp_path, settings):
    """Per shard (a torchrun rank's or Ray actor's bar totals its shards): the planned tokens are the tokens
    written, for tweet-like text (punctuation, handles: more tokens than words), a 2 MB line (cut at
    MAX_LINE_BYTES), blank and bad lines, and JSONL of both kinds."""
    from spacy_elmo.pretraining.corpus import MAX_LINE_BYTES

    tweets = tmp_path / "tweets.txt"
    tweets.write_text("@user: can't wait!!! #elmo http://x.co/a?b=c :-)\n\n   \nok...so, (yes) \"no\"\n"
                      + "word " * 400_000 + "\nlast, line.\n")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"text": "Hi, there!"}\nnot json\n{"tokens": ["x", "y", " "]}\n')
    messages, manifest = run_embed(tiny_files, [tweets, jsonl], tmp_path / "out", shard_lines=2, window=64,
                                   chunk_tokens=50_000, **settings)
    assert [s["words"] for s in manifest["shards"]] == [s["tokens"] for s in manifest["shards"]]
    assert f"about {manifest['tokens']:,} tokens" in messages[0]
    assert manifest["tokens"] < MAX_LINE_BYTES // 5 + 100  # the 2 MB line is cut to 20k words, not 400k
