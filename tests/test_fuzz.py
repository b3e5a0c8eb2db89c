"""Property-based tests over open-ended input (hypothesis; profiles in ``fuzzing.py``).

The biLM and the component over any token strings and Docs: finite values, the published maths, the
same output on every call and whatever the batch-mates. The weight, options and vocabulary files and
the pretraining corpus reader over corrupted or arbitrary bytes: a loaded result or an error that names
the file, never another exception.
"""
import io
import json
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from hypothesis import example, given, strategies as st
from spacy.tokens import Doc, DocBin

import reference_math as R
from fuzzing import PROFILES, run
from spacy_elmo.bilm import BiLMOptions, Embedder
from spacy_elmo.io import load_bilm, load_native, save_native
from spacy_elmo.pretraining.corpus import CorpusStats, read_items
from spacy_elmo.pretraining.vocab import SPECIALS, Vocab

BATCH_TOL = 1e-5  # float32 rounding of products of other batch shapes

# tokens: short ones of any characters (surrogates aside: spaCy refuses them), and some past 48 bytes
CHARS = st.characters(exclude_categories=("Cs",))
TOKENS = st.one_of(st.text(CHARS, min_size=1, max_size=12), st.text(CHARS, min_size=40, max_size=300))
SENTENCE = st.lists(TOKENS, min_size=0, max_size=30)


@st.composite
def docs(draw, vocab):
    """A Doc of any tokens and spaces, with sentence boundaries set or not."""
    words = draw(st.lists(TOKENS, min_size=0, max_size=40))
    spaces = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    sent_starts = None
    if words and draw(st.booleans()):
        sent_starts = [True] + draw(st.lists(st.booleans(), min_size=len(words) - 1, max_size=len(words) - 1))
    return Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts)


def copy_doc(doc: Doc) -> Doc:
    starts = [t.is_sent_start for t in doc] if doc.has_annotation("SENT_START") else None
    return Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc], sent_starts=starts)


@pytest.fixture(scope="module")
def nlps(tiny_files):
    """The default component, and one with short windows and a tiny character cache (refilled often)."""
    options, weights = tiny_files
    made = []
    for settings in ({}, {"window": 5, "cache_size": 3, "max_batch_tokens": 16}):
        nlp = spacy.blank("en")
        model = {"@architectures": "spacy-elmo.BiLM.v2", **settings}
        nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options), "model": model})
        made.append(nlp)
    return made


@PROFILES
def test_component_over_any_docs(nlps, profile):
    """Every Doc: finite layers of the right shape, equal alone and among random batch-mates, on every call;
    with the default window, each sentence (or the whole Doc) is what the biLM gives it on its own."""
    default, windowed = nlps
    reference = Embedder(default.get_pipe("elmo").bilm, cache_size=0)

    @given(st.lists(docs(default.vocab), min_size=1, max_size=4), st.integers(1, 4))
    def check(batch, batch_size):
        for nlp in (default, windowed):
            together = list(nlp.pipe([copy_doc(d) for d in batch], batch_size=batch_size))
            for doc, mixed in zip(batch, together):
                layers = mixed._.elmo_data.layers
                assert layers.shape == (3, len(doc), 32) and numpy.isfinite(layers).all()
                alone = nlp(copy_doc(doc))._.elmo_data.layers
                assert numpy.abs(alone - layers).max(initial=0) <= BATCH_TOL
                assert numpy.array_equal(nlp(copy_doc(doc))._.elmo_data.layers, alone)  # repeat: caches hit
        for doc in batch:
            layers = default(copy_doc(doc))._.elmo_data.layers
            pieces = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
            for piece in pieces if len(doc) else []:
                want = reference.embed([[t.text for t in piece]])[0]
                assert numpy.abs(layers[:, piece.start : piece.end] - want).max() <= BATCH_TOL

    run(profile, 25, check)


@PROFILES
def test_bilm_over_any_token_strings(tiny_files, tiny_opts, tiny_arrays, profile):
    """Any strings, lone surrogates too: the published maths (float64 reference) whatever the batch."""
    bilm = load_bilm(tiny_files[1], tiny_files[0])
    any_chars = st.text(st.characters(exclude_categories=()), min_size=0, max_size=60)

    @given(st.lists(st.lists(any_chars, max_size=12), min_size=1, max_size=5), st.integers(1, 64), st.integers(0, 8))
    def check(sentences, max_batch_tokens, cache_size):
        embedder = Embedder(bilm, max_batch_tokens=max_batch_tokens, cache_size=cache_size)
        got = embedder.embed(sentences)
        for words, layers in zip(sentences, got):
            assert layers.shape == (3, len(words), 32) and numpy.isfinite(layers).all()
            if words:
                assert numpy.abs(layers - R.elmo_layers(tiny_arrays, tiny_opts, words)).max() <= 1e-4
        assert all(numpy.array_equal(a, b) for a, b in zip(embedder.embed(sentences), got))

    run(profile, 30, check)


# files ----------------------------------------------------------------------------------------------------

MUTATIONS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8)


def mutate(data: bytes, mutations, cut: float) -> bytes:
    """``data`` with bytes overwritten at relative positions, then cut to the share ``cut`` of its length."""
    out = bytearray(data)
    for where, value in mutations:
        out[int(where * len(out))] = value
    return bytes(out[: max(1, int(cut * len(out)))])


def loads_or_names(load, path: Path) -> None:
    """``load()`` gives a biLM with finite weights, or raises an error whose message names ``path``."""
    try:
        bilm = load()
    except (ValueError, FileNotFoundError) as err:
        assert str(path) in str(err), str(err)
        return
    assert all(torch.isfinite(p).all() for p in bilm.parameters())


CUTS = st.one_of(st.just(1.0), st.floats(0, 1))


@PROFILES
def test_corrupted_hdf5_weights(tiny_files, tmp_path_factory, profile):
    options, weights = tiny_files
    data = weights.read_bytes()
    path = tmp_path_factory.mktemp("hdf5") / "weights.hdf5"

    @given(MUTATIONS, CUTS)
    @example([(0.3599342505451848, 1)], 1.0)  # found by this test: HDF5 raised a RuntimeError, naming no file
    def check(mutations, cut):
        path.write_bytes(mutate(data, mutations, cut))
        loads_or_names(lambda: load_bilm(path, options), path)

    run(profile, 40, check)


@pytest.fixture(scope="module")
def native_bytes(tiny_files, tmp_path_factory):
    directory = tmp_path_factory.mktemp("native")
    save_native(load_bilm(tiny_files[1], tiny_files[0]), directory)
    return (directory / "options.json").read_bytes(), (directory / "weights.pt").read_bytes()


@PROFILES
def test_corrupted_native_weights(native_bytes, tmp_path_factory, profile):
    options, weights = native_bytes
    directory = tmp_path_factory.mktemp("native-corrupt")
    (directory / "options.json").write_bytes(options)
    path = directory / "weights.pt"
    with zipfile.ZipFile(io.BytesIO(weights)) as archive:  # the tensor data are most of the file: hit it too
        data_start = min(archive.getinfo(n).header_offset for n in archive.namelist() if "/data/" in n)

    @given(MUTATIONS, CUTS, st.booleans())
    def check(mutations, cut, in_data):
        if in_data:
            span = len(weights) - data_start
            mutations = [((data_start + where * span) / len(weights), value) for where, value in mutations]
        path.write_bytes(mutate(weights, mutations, cut))
        loads_or_names(lambda: load_native(directory), path)

    run(profile, 40, check)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def paths_of(data, prefix=()):
    """Every path to a value in nested dicts and lists."""
    yield prefix
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in children:
        yield from paths_of(value, prefix + (key,))


@PROFILES
def test_options_with_any_value_anywhere(tiny_opts, tiny_files, tmp_path_factory, profile):
    """Any JSON value at any place of a valid options.json: loaded (and then a consistent biLM) or a named
    error; accepted options round-trip through ``to_dict``."""
    places = [p for p in paths_of(tiny_opts) if p]
    path = tmp_path_factory.mktemp("options") / "options.json"

    @given(st.sampled_from(places), JSON, st.booleans())
    def check(place, value, delete):
        data = json.loads(json.dumps(tiny_opts))
        node = data
        for key in place[:-1]:
            node = node[key]
        if delete:
            del node[place[-1]]
        else:
            node[place[-1]] = value
        path.write_text(json.dumps(data))
        try:
            options = BiLMOptions.from_file(path)
        except ValueError as err:
            assert str(path) in str(err)
            return
        assert BiLMOptions.from_dict(options.to_dict()) == options
        loads_or_names(lambda: load_bilm(tiny_files[1], path), tiny_files[1])

    run(profile, 60, check)


@PROFILES
def test_options_files_of_any_bytes(tiny_files, tmp_path_factory, profile):
    path = tmp_path_factory.mktemp("options-bytes") / "options.json"

    @given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())))
    def check(data):
        path.write_bytes(data)
        with pytest.raises(ValueError, match=str(path)):
            load_bilm(tiny_files[1], path)

    run(profile, 30, check)


@PROFILES
def test_vocabulary_round_trips_any_token_strings(tmp_path_factory, profile):
    path = tmp_path_factory.mktemp("vocab") / "vocab.jsonl"

    @given(st.lists(st.text(CHARS, max_size=20), max_size=30, unique=True))
    def check(words):
        vocab = Vocab(list(SPECIALS) + [w for w in words if w not in SPECIALS])
        vocab.to_file(path)
        assert Vocab.from_file(path) == vocab
        assert len(path.read_text(encoding="utf8").splitlines()) == len(vocab)  # a line per token, for any reader

    run(profile, 40, check)


# the pretraining corpus reader ----------------------------------------------------------------------------------

LINE_BYTES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf8")),
    st.builds(lambda t: json.dumps({"text": t}).encode("utf8"), st.text(max_size=20)),
)


@PROFILES
@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_corpus_reader_over_any_bytes(tmp_path_factory, suffix, profile):
    """Any bytes: only usable text comes out (non-empty, stripped, no control characters but tab and line
    breaks), the counts add up, and reading from any item's position gives the rest (what resume does)."""
    path = tmp_path_factory.mktemp("corpus") / f"input{suffix}"

    @given(st.lists(LINE_BYTES, max_size=12), st.sampled_from([b"\n", b"\r\n", b"\r", b""]))
    def check(lines, end):
        path.write_bytes(b"\n".join(lines) + end)
        stats = CorpusStats()
        items = list(read_items(path, 0, stats))
        assert stats.lines == len(items)
        for after, text in items:
            assert isinstance(text, str) and text.strip() and after <= path.stat().st_size
            if suffix == ".txt":
                assert text == text.strip() and not any(ord(c) < 32 and c not in "\t\r\n" for c in text)
        for k, (after, _) in enumerate(items):
            rest = [text for _, text in read_items(path, after, CorpusStats())]
            assert rest == [text for _, text in items[k + 1 :]]

    run(profile, 40, check)


@pytest.fixture(scope="module")
def docbin_bytes():
    nlp = spacy.blank("en")
    docs = DocBin()
    for text in ("A cat sat .", "Dogs   ran\n home !", "", "Zürich 日本語 😀"):
        docs.add(nlp(text))
    return docs.to_bytes()


@PROFILES
def test_corpus_reader_over_corrupted_spacy_files(docbin_bytes, tmp_path_factory, profile):
    path = tmp_path_factory.mktemp("spacy") / "input.spacy"

    @given(st.one_of(MUTATIONS.map(lambda m: ("mutate", m)), st.binary(max_size=100).map(lambda b: ("bytes", b))),
           CUTS)
    def check(how, cut):
        kind, value = how
        path.write_bytes(mutate(docbin_bytes, value, cut) if kind == "mutate" else value)
        try:
            items = list(read_items(path, 0, CorpusStats()))
        except ValueError as err:
            assert str(path) in str(err)
            return
        for _, words in items:
            assert words and all(isinstance(w, str) and not w.isspace() for w in words)

    run(profile, 30, check)
