"""Faults a probe of the project found (issue 17): each test failed before its fix.

Bad input gets an error that names the file, the key or dataset, and the value; nothing is allocated
from an options file before it is checked against the weights; pretraining files keep the usual modes
and every token string; the CLI ends with one line, not a traceback.
"""
import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

import reference_math as R
from spacy_elmo.bilm import BiLMOptions
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm, load_native, save_native
from spacy_elmo.pretraining import pretrain
from spacy_elmo.pretraining.vocab import Vocab
from helpers import TINY, said, small_config, synthetic_text


def with_value(opts: dict, key: str, value) -> dict:
    """A copy of ``opts`` with the dotted ``key`` set to ``value``."""
    data = copy.deepcopy(opts)
    *parents, last = key.split(".")
    node = data
    for name in parents:
        node = node[name]
    node[last] = value
    return data


def write_options(tmp_path: Path, data, name: str = "options.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def native_dir(tiny_files, tmp_path) -> Path:
    save_native(load_bilm(tiny_files[1], tiny_files[0]), tmp_path / "native")
    return tmp_path / "native"


def cli(*args) -> "CliRunner.Result":
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *parts: str) -> None:
    """The command ended with exit code 1 through its error message, not an exception's traceback."""
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, (result.exception, result.output)
    text = said(result)
    for part in parts:
        assert part in text, (part, text)


# 3. options.json values ------------------------------------------------------------------------------------

BAD_VALUES = [
    ("lstm.n_layers", 0, "must be a positive integer"),
    ("lstm.cell_clip", -3, "must be a finite number >= 0 or null"),
    ("lstm.proj_clip", "3", "must be a finite number >= 0 or null"),
    ("lstm.dim", 32.9, "must be a positive integer"),
    ("lstm.dim", -32, "must be a positive integer"),
    ("lstm.dim", True, "must be a positive integer"),
    ("lstm.projection_dim", 0, "must be a positive integer"),
    ("lstm.use_skip_connections", "false", "must be true or false"),
    ("char_cnn.filters", [], "must be a non-empty list"),
    ("char_cnn.filters", [[0, 4]], "must be a non-empty list"),
    ("char_cnn.filters", [[51, 4]], "width at most 50"),
    ("char_cnn.filters", [[1, -4]], "must be a non-empty list"),
    ("char_cnn.filters", "[[1, 4]]", "must be a non-empty list"),
    ("char_cnn.n_highway", -1, "must be an integer >= 0"),
    ("char_cnn.embedding.dim", "4", "must be a positive integer"),
    ("char_cnn.activation", "gelu", "must be one of ['relu', 'tanh']"),
    ("char_cnn.n_characters", 300, "must be one of [261, 262]"),
    ("lstm", [1], "must be a JSON object"),
]


@pytest.mark.parametrize("key,value,problem", BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_options_values_are_checked_and_named(tiny_opts, tiny_files, tmp_path, key, value, problem):
    path = write_options(tmp_path, with_value(tiny_opts, key, value))
    with pytest.raises(ValueError) as info:
        load_bilm(tiny_files[1], path)
    message = str(info.value)
    assert message.startswith(f"{path}: key '{key}'"), message
    assert problem in message and repr(value) in message, message


def test_misspelt_option_key_is_refused(tiny_opts, tiny_files, tmp_path):
    data = copy.deepcopy(tiny_opts)
    data["lstm"]["use_skip_connection"] = data["lstm"].pop("use_skip_connections")
    with pytest.raises(ValueError, match=r"unknown keys in 'lstm': \['use_skip_connection'\]"):
        load_bilm(tiny_files[1], write_options(tmp_path, data))


def test_lenient_where_nothing_is_lost(tiny_opts):
    """Integral floats are integers, and a null clip means no clipping, as in bilm-tf."""
    data = with_value(with_value(tiny_opts, "lstm.dim", 32.0), "lstm.cell_clip", None)
    options = BiLMOptions.from_dict(data)
    assert options.lstm.dim == 32 and isinstance(options.lstm.dim, int) and options.lstm.cell_clip == 0.0


# 4. options checked against the weights before anything is built -------------------------------------------

# sizes past the options' upper bounds are refused with the options file named, before the weights are read;
# sizes within them that disagree with the file, by the file check
HUGE = [("lstm.dim", 1e9, "key 'lstm.dim' must be a positive integer of at most 32768, got 1000000000.0"),
        ("lstm.n_layers", 100_000, "key 'lstm.n_layers' must be a positive integer of at most 16, got 100000"),
        ("char_cnn.n_highway", 1_000_000, "key 'char_cnn.n_highway' must be an integer >= 0 of at most 16"),
        ("lstm.dim", 4096, "dataset 'RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0' has shape (32, 128)"),
        ("lstm.n_layers", 16, "holds 2 LSTM layers (RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell, ...), but the options have lstm.n_layers with 16"),
        ("char_cnn.n_highway", 16, "holds 1 highway layers (CNN_high_0, ...), but the options have char_cnn.n_highway with 16"),
        ("lstm.n_layers", 1, "holds 2 LSTM layers")]
HUGE_NATIVE = [("lstm.dim", 1e9, "key 'lstm.dim' must be a positive integer of at most 32768"),
               ("lstm.dim", 4096, "weight 'lstm.layers.0.weight_ih' has shape (2, 16, 128)"),
               ("lstm.n_layers", 16, "holds 2 LSTM layers, but the options have lstm.n_layers with 16"),
               ("char_cnn.n_highway", 16, "holds 1 highway layers, but the options have char_cnn.n_highway with 16")]


def test_huge_options_fail_on_the_file_check_before_any_allocation(tiny_opts, tiny_files, tmp_path):
    """In a fresh process, whose peak memory is read after the loads: the options' sizes never reach an
    allocation (before the fix, ``lstm.dim: 1e9`` asked for 512 GB and ``n_highway: 1e6`` ran out of memory)."""
    native = tmp_path / "native"
    save_native(load_bilm(tiny_files[1], tiny_files[0]), native)
    cases = []
    for key, value, expected in HUGE:
        cases.append(("hdf5", str(tiny_files[1]), str(write_options(tmp_path, with_value(tiny_opts, key, value),
                                                                     f"{key}-{value}.json")), expected))
    for key, value, expected in HUGE_NATIVE:
        directory = tmp_path / f"native-{key}-{value}"
        directory.mkdir()
        (directory / "weights.pt").write_bytes((native / "weights.pt").read_bytes())
        write_options(directory, with_value(json.loads((native / "options.json").read_text()), key, value))
        cases.append(("native", str(directory), None, expected))
    script = """
import json, resource, sys
from spacy_elmo.io import load_bilm
cases = json.loads(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
for kind, weights, options, expected in cases:
    try:
        load_bilm(weights, options)
        errors.append("loaded")
    except ValueError as err:
        errors.append(str(err))
print(json.dumps([errors, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024]))
"""
    done = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    errors, grown_mb = json.loads(done.stdout.strip().splitlines()[-1])
    for (kind, weights, options, expected), error in zip(cases, errors):
        named = options if expected.startswith("key ") and options else weights
        assert expected in error and named in error, (kind, expected, error)
    assert grown_mb < 200, f"peak memory grew by {grown_mb} MB while checking"


# 10. errors that name the file and the dataset --------------------------------------------------------------

def rewrite_hdf5(tiny_opts, tiny_arrays, tmp_path, name, make):
    """The tiny published files with dataset ``name`` replaced by ``make(h5file, name)``."""
    import h5py

    options, weights = R.write_published(tmp_path, tiny_opts, tiny_arrays)
    with h5py.File(weights, "a") as handle:
        del handle[name]
        make(handle, name)
    return options, weights


HDF5_FAULTS = {
    "group": (lambda h, n: h.create_group(n), "'CNN_proj/W_proj' is a Group, not a dataset of shape (16, 16)"),
    "strings": (lambda h, n: h.create_dataset(n, data=numpy.array([b"a"] * 16 * 16).reshape(16, 16)),
                "dataset 'CNN_proj/W_proj' holds |S1 values, not floating-point numbers"),
    "integers": (lambda h, n: h.create_dataset(n, data=numpy.arange(16 * 16, dtype="i4").reshape(16, 16)),
                 "dataset 'CNN_proj/W_proj' holds int32 values, not floating-point numbers"),
    "compound": (lambda h, n: h.create_dataset(n, shape=(16, 16), dtype=numpy.dtype([("a", "f4"), ("b", "i4")])),
                 "dataset 'CNN_proj/W_proj' holds"),
    "NaN": (lambda h, n: h.create_dataset(n, data=numpy.full((16, 16), numpy.nan, dtype="f4")),
            "dataset 'CNN_proj/W_proj' holds NaN or infinite values"),
}


@pytest.mark.parametrize("fault", sorted(HDF5_FAULTS))
def test_hdf5_dataset_faults_name_file_and_dataset(tiny_opts, tiny_arrays, tmp_path, fault):
    make, expected = HDF5_FAULTS[fault]
    options, weights = rewrite_hdf5(tiny_opts, tiny_arrays, tmp_path, "CNN_proj/W_proj", make)
    with pytest.raises(ValueError) as info:
        load_bilm(weights, options)
    assert str(weights) in str(info.value) and expected in str(info.value), str(info.value)


def test_options_that_are_not_utf8(tiny_files, tmp_path):
    path = tmp_path / "options.json"
    path.write_bytes(json.dumps({"lstm": {"dim": 32}}).encode("utf-16"))
    with pytest.raises(ValueError, match=f"biLM options file {path} is not UTF-8 text"):
        load_bilm(tiny_files[1], path)


@pytest.mark.parametrize("content", [7, [1, 2], {"a": 1}, {"lstm.layers.0.bias": [1.0]}],
                         ids=["int", "list", "dict of ints", "dict of lists"])
def test_native_weights_that_are_not_a_state_dict(native_dir, content):
    torch.save(content, native_dir / "weights.pt")
    with pytest.raises(ValueError, match=f"{native_dir / 'weights.pt'}: (holds a|entry)"):
        load_native(native_dir)


def test_native_weights_with_nan_or_ints(native_dir):
    state = torch.load(native_dir / "weights.pt", weights_only=True)
    state["lstm.layers.0.bias"][0, 3] = float("inf")
    torch.save(state, native_dir / "weights.pt")
    with pytest.raises(ValueError, match="weight 'lstm.layers.0.bias' holds NaN or infinite values"):
        load_native(native_dir)
    state["lstm.layers.0.bias"] = torch.zeros(state["lstm.layers.0.bias"].shape, dtype=torch.int64)
    torch.save(state, native_dir / "weights.pt")
    with pytest.raises(ValueError, match="weight 'lstm.layers.0.bias' holds torch.int64 values"):
        load_native(native_dir)


def test_symlink_loops_and_broken_links_are_not_reported_as_missing(tiny_files, native_dir, tmp_path):
    loop_a, loop_b = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(ValueError, match=f"ELMo weights {loop_a} is a symbolic link loop"):
        load_bilm(loop_a, tiny_files[0])
    broken = tmp_path / "broken.json"
    broken.symlink_to(tmp_path / "gone.json")
    with pytest.raises(ValueError, match=f"biLM options file {broken} is a broken symbolic link"):
        load_bilm(tiny_files[1], broken)
    (native_dir / "weights.pt").unlink()
    (native_dir / "weights.pt").symlink_to(native_dir / "weights.pt")
    with pytest.raises(ValueError, match="weights.pt is a symbolic link loop"):
        load_native(native_dir)


# 5, 6, 8. pretraining: file modes, every token string, resume with other options -----------------------------

@pytest.fixture
def small_corpus(tmp_path) -> Path:
    path = tmp_path / "train.txt"
    path.write_text(synthetic_text(120))
    return path


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_pretrain_files_have_the_usual_modes(small_corpus, tmp_path, umask):
    previous = os.umask(umask)
    try:
        pretrain([small_corpus], tmp_path / "out", small_config(max_steps=2, checkpoint_every=1),
                 BiLMOptions.from_file(TINY))
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert "weights.pt" in modes and "checkpoint.pt" in modes and "vocab.jsonl" in modes
    assert modes == {name: 0o666 & ~umask for name in modes}


STRANGE_TOKENS = ["x\ry", "a\x85b", "c\u2028d", "e\u2029f", "g h", "i\nj", "\r", '"q"', "\\n", "k\x0bl", "z\x0c"]


def test_every_token_string_round_trips_through_pretraining(tmp_path):
    """Tokens from a .spacy file, as they are: the vocabulary file keeps each one, and ``evaluate`` and
    ``--resume`` read it back (before: a ``\\r`` broke both)."""
    nlp = spacy.blank("en")
    docs = DocBin()
    for i in range(60):
        words = ["the", STRANGE_TOKENS[i % len(STRANGE_TOKENS)], "cat", STRANGE_TOKENS[(i * 7) % len(STRANGE_TOKENS)], "."]
        docs.add(Doc(nlp.vocab, words=words))
    corpus = tmp_path / "strange.spacy"
    docs.to_disk(corpus)
    out = tmp_path / "out"
    args = ["pretrain", corpus, "--options", TINY, "--output", out, "--vocab-size", 50, "--min-count", 1,
            "--batch-tokens", 256, "--max-length", 30, "--warmup-steps", 1, "--eval-every", 100, "--log-every", 1]
    result = cli(*args, "--max-steps", 2, "--checkpoint-every", 1)
    assert result.exit_code == 0, result.output
    result = cli("evaluate", out, corpus)
    assert result.exit_code == 0, result.output
    result = cli(*args, "--max-steps", 3, "--checkpoint-every", 1, "--resume")
    assert result.exit_code == 0, result.output
    tokens = Vocab.from_directory(out).tokens
    kept = [t for t in STRANGE_TOKENS if not t.isspace()]  # whitespace tokens are dropped, as spaCy's is_space
    assert set(kept) <= set(tokens), set(kept) - set(tokens)
    assert len((out / "vocab.jsonl").read_text(encoding="utf8").splitlines()) == len(tokens)


def test_a_legacy_vocab_txt_is_read_exactly_and_migrated(small_corpus, tmp_path):
    out = tmp_path / "out"
    pretrain([small_corpus], out, small_config(max_steps=1), BiLMOptions.from_file(TINY))
    tokens = Vocab.from_directory(out).tokens
    # spacy-elmo 0.1 wrote the tokens one per line; a token could hold "\r"
    legacy = tokens[:-1] + ["odd\rtoken"]
    (out / "vocab.txt").write_bytes("".join(t + "\n" for t in legacy).encode("utf8"))
    (out / "vocab.jsonl").unlink()
    assert Vocab.from_directory(out).tokens == legacy
    pretrain([small_corpus], tmp_path / "more", small_config(max_steps=1), init_weights=out)
    assert not (tmp_path / "more" / "vocab.txt").exists()
    assert Vocab.from_directory(tmp_path / "more").tokens == legacy


def test_resume_with_other_options_is_refused(small_corpus, tmp_path):
    out = tmp_path / "out"
    config = small_config(max_steps=2, checkpoint_every=1)
    pretrain([small_corpus], out, config, BiLMOptions.from_file(TINY))
    other = BiLMOptions.from_dict(with_value(json.loads(TINY.read_text()), "lstm.dim", 48))
    with pytest.raises(ValueError, match=r"--resume with --options that differ .*lstm.dim: 32 -> 48"):
        pretrain([small_corpus], out, small_config(max_steps=3, checkpoint_every=1), other, resume=True)
    same = BiLMOptions.from_file(TINY)
    assert pretrain([small_corpus], out, small_config(max_steps=3, checkpoint_every=1), same, resume=True)["step"] == 3


def test_no_held_out_text_is_said_not_reported_as_nan(tmp_path):
    """One long line: nothing is held out; the run says so instead of printing perplexity nan."""
    corpus = tmp_path / "one.txt"
    corpus.write_text(" ".join(synthetic_text(300).split("\n")) + "\n")
    result = cli("pretrain", corpus, "--options", TINY, "--output", tmp_path / "out", "--vocab-size", 50,
                 "--min-count", 1, "--batch-tokens", 256, "--max-length", 30, "--max-steps", 1, "--warmup-steps", 1)
    assert result.exit_code == 0, result.output
    text = said(result)
    assert "Warning: no held-out text" in text and "no held-out text. biLM in" in text and "nan" not in text


# 7. one-line CLI errors ---------------------------------------------------------------------------------------

def test_cli_output_under_a_file(small_corpus, native_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("pretrain", small_corpus, "--options", TINY, "--output", blocker / "out", "--max-steps", 1)
    assert_one_line_error(result, str(blocker / "out"), "Not a directory")
    result = cli("export", native_dir, blocker / "exported")
    assert_one_line_error(result, str(blocker / "exported"), "Not a directory")


def test_cli_unwritable_output_directory(small_corpus, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere chmod allows nothing: sysfs refuses new files even to root
        target = Path("/sys/kernel")
        if not target.is_dir():
            pytest.skip("no unwritable directory for root here")
    else:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(0o500)
    result = cli("pretrain", small_corpus, "--options", TINY, "--output", target, "--max-steps", 1,
                 "--vocab-size", 50, "--min-count", 1, "--batch-tokens", 256, "--max-length", 30)
    assert_one_line_error(result, str(target), "ermission denied")


def test_cli_options_a_directory_and_bad_values(small_corpus, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(cli("pretrain", small_corpus, "--options", tmp_path, "--output", out),
                          f"biLM options file {tmp_path} is a directory")
    assert_one_line_error(cli("pretrain", small_corpus, "--options", TINY, "--output", out, "--device", "gpu"),
                          "device 'gpu' is not one of", "available here")
    assert_one_line_error(cli("pretrain", small_corpus, "--options", TINY, "--output", out, "--threads", -1),
                          "--threads must be 0")
    assert_one_line_error(cli("pretrain", small_corpus, "--options", TINY, "--output", out, "--final-lr", 2),
                          "final_lr must be in [0, 1], got 2.0")
    assert_one_line_error(cli("evaluate", tmp_path / "nothing", small_corpus), str(tmp_path / "nothing"))


# 9, 11, 12. the component ---------------------------------------------------------------------------------------

def test_docbin_with_layers_reads_in_a_fresh_process_after_import(tiny_nlp, tmp_path):
    docs = DocBin(store_user_data=True)
    docs.add(tiny_nlp("Layers travel with the Doc ."))
    docs.to_disk(tmp_path / "docs.spacy")
    script = (
        "import sys, spacy, spacy_elmo; from spacy.tokens import DocBin;"
        "doc = next(DocBin().from_disk(sys.argv[1]).get_docs(spacy.blank('en').vocab));"
        "print(doc._.elmo_data.layers.shape, doc[1]._.elmo.shape)"
    )
    done = subprocess.run([sys.executable, "-c", script, tmp_path / "docs.spacy"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["(3,", "6,", "32)", "(32,)"]


@pytest.mark.parametrize("weights", [[1.0, -0.5, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
def test_mix_weights_must_be_non_negative(tiny_files, weights):
    options, hdf5 = tiny_files
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="mix_weights must be finite non-negative numbers"):
        nlp.add_pipe("elmo", config={"weights": str(hdf5), "options": str(options), "mix": "weighted",
                                     "mix_weights": weights})


def test_device_is_checked_in_the_factory():
    from spacy_elmo.layers.bilm_model import get_settings

    nlp = spacy.blank("en")

    def on(device: str) -> dict:
        return {"model": {"@architectures": "spacy-elmo.BiLM.v2", "device": device}}

    with pytest.raises(ValueError, match=r"elmo: device 'gpu' is not one of .*available here: \['auto', 'cpu'"):
        nlp.add_pipe("elmo", config=on("gpu"))
    beyond = f"cuda:{torch.cuda.device_count()}"
    expected = "there is no such GPU" if torch.cuda.is_available() else "CUDA is not available"
    with pytest.raises(ValueError, match=f"elmo: device '{beyond}': {expected}"):
        nlp.add_pipe("elmo", config=on(beyond))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="elmo: device 'cuda': CUDA is not available"):
            nlp.add_pipe("elmo", config=on("cuda"))
    assert get_settings(nlp.add_pipe("elmo", config=on("cpu")).model).device == "cpu"
