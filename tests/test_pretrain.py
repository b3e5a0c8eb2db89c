"""biLM pretraining: input handling, vocabulary, batches, the LM objective, continue training, export."""
import json
import math
from collections import Counter
from pathlib import Path

import numpy
import pytest
import torch
from typer.testing import CliRunner

import reference_math as R
from helpers import TINY, said, small_config, synthetic_corpus, synthetic_text
from spacy_elmo.bilm import BiLM, BiLMOptions
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm, load_hdf5, load_native
from spacy_elmo.pretraining import evaluate, load_lm, pretrain
from spacy_elmo.pretraining.batches import BatchStream, Position, plan, shard, tensorize, CharIdCache
from spacy_elmo.pretraining.corpus import MAX_LINE_BYTES, CorpusStats, Tokenizer, check_paths, read_items
from spacy_elmo.pretraining.scan import scan, unigram_perplexity
from spacy_elmo.pretraining.vocab import Vocab


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synthetic_corpus(tmp_path_factory.mktemp("corpus"), 400)


def run(texts, output, config, **kwargs):
    """:func:`pretrain` with the tiny architecture unless weights to continue from are given."""
    if "init_weights" not in kwargs and not kwargs.get("resume"):
        kwargs.setdefault("options", BiLMOptions.from_file(TINY))
    return pretrain(texts, output, config, **kwargs)


def losses(output: Path):
    return [r["loss"] for r in map(json.loads, (output / "log.jsonl").read_text().splitlines()) if "loss" in r]


# input handling ---------------------------------------------------------------------------------------------

def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        check_paths([empty])
    result = CliRunner().invoke(app, ["pretrain", str(empty), "-c", str(TINY), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "is empty" in said(result)


def random_bytes(n: int) -> bytes:
    data = numpy.random.default_rng(0).integers(0, 256, n, dtype=numpy.uint8)
    data[data == 10] = 0  # one binary "line"
    return bytes(data)


@pytest.mark.parametrize("content", [b"\n\n   \n\t\n" * 50, random_bytes(50_000)], ids=["blank", "binary"])
def test_file_without_text_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad.txt has no usable text \(\d+ lines skipped\)"):
        scan([path], Tokenizer("en", 50), 0.0)
    result = CliRunner().invoke(app, ["pretrain", str(path), "-c", str(TINY), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "has no usable text" in said(result)


def test_bad_lines_are_skipped_or_cut_with_counts(tmp_path):
    good = synthetic_text(30).encode()
    huge = b"word " * (1_000_000 // 5)  # a 1 MB line
    garbage = bytes([0xFF, 0xFE, 0x80, 0x81]) * 20 + b"\n"
    content = good + b"   \n" + garbage + b"nul\x00inside\n" + huge + b"\n" + good
    path = tmp_path / "mixed.txt"
    path.write_bytes(content)
    stats = CorpusStats()
    texts = [t for _, t in read_items(path, 0, stats)]
    assert stats.lines == 61 and stats.blank == 1 and stats.undecodable == 1 and stats.binary == 1 and stats.cut == 1
    assert max(len(t.encode()) for t in texts) <= MAX_LINE_BYTES
    data = scan([path], Tokenizer("en", 30), 0.0)
    assert data.stats.cut == 1 and data.stats.skipped == 3
    summary = run([path], tmp_path / "out", small_config(max_steps=2, heldout=0.0))
    assert summary["step"] == 2 and summary["text"]["cut"] == 1


def test_jsonl_and_spacy_inputs(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text": "The cat sat."}\nnot json\n{"title": "no text"}\n{"text": "  "}\n{"text": "A dog ran!"}\n')
    stats = CorpusStats()
    assert [t for _, t in read_items(jsonl, 0, stats)] == ["The cat sat.", "A dog ran!"]
    assert stats.bad_json == 2 and stats.blank == 1
    nlp = spacy.blank("en")
    db = DocBin(docs=[nlp("Red mat  under tree."), nlp("Big dog")])
    db.to_disk(tmp_path / "b.spacy")
    items = [i for _, i in read_items(tmp_path / "b.spacy", 0, CorpusStats())]
    assert items == [["Red", "mat", "under", "tree", "."], ["Big", "dog"]]
    assert Tokenizer("en", 3)(["The cat sat on the mat.", ["Big", "dog"]]) == [
        ["The", "cat", "sat"], ["on", "the", "mat"], ["."], ["Big", "dog"]]


def test_spacy_input_words_match_the_docs_from_any_offset(tmp_path):
    """The ORTH-column reader gives what spaCy's own Docs give, with tags, entities and spaces stored."""
    import spacy
    from spacy.tokens import Doc, DocBin

    nlp = spacy.blank("en")
    docs = [nlp("Ünïcode 🙂 names:  Ada Lovelace\n\nmet Bob."), nlp(" "), nlp("x" * 60 + " end")]
    docs.append(Doc(nlp.vocab, words=["New", "York", "\t", "is"], tags=["NNP", "NNP", "_SP", "VBZ"],
                    ents=["B-GPE", "I-GPE", "O", "O"]))
    path = tmp_path / "c.spacy"
    DocBin(attrs=["ORTH", "TAG", "ENT_IOB", "ENT_TYPE"], docs=docs).to_disk(path)
    expected = [[t.text for t in d if not t.is_space] for d in DocBin().from_disk(path).get_docs(nlp.vocab)]
    assert expected[1] == [] and "\t" not in expected[3]
    for offset in range(len(docs) + 1):
        stats = CorpusStats()
        got = list(read_items(path, offset, stats))
        want = [(i + 1, w) for i, w in enumerate(expected) if i >= offset and w]
        assert got == want
        assert stats.blank == (1 if offset <= 1 else 0)
    data = bytearray(path.read_bytes())
    (tmp_path / "cut.spacy").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="cut.spacy is not a readable .spacy file"):
        list(read_items(tmp_path / "cut.spacy", 0, CorpusStats()))
    stripped = DocBin(docs=docs)
    stripped.strings = set()  # words whose strings the file lacks
    stripped.to_disk(tmp_path / "nostrings.spacy")
    with pytest.raises(ValueError, match="nostrings.spacy is not a readable .spacy file"):
        list(read_items(tmp_path / "nostrings.spacy", 0, CorpusStats()))


# vocabulary and batches -------------------------------------------------------------------------------------

def test_vocab_build_counts_and_file(tmp_path):
    counts = Counter({"b": 5, "a": 5, "c": 2, "d": 1})
    vocab = Vocab.build(counts, n_sequences=4, size=5, min_count=2)
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "a", "b"]
    assert vocab.counts == [4, 4, 3, 5, 5]  # c and d are unknown
    assert vocab.ids(["a", "zzz", "b"]) == [3, 2, 4]
    assert math.isclose(sum(math.exp(p) for p in vocab.unigram_log_probs()), 1.0)
    vocab.to_file(tmp_path / "vocab.jsonl")
    assert Vocab.from_file(tmp_path / "vocab.jsonl") == vocab
    (tmp_path / "bad.jsonl").write_text('"a"\n"b"\n')
    with pytest.raises(ValueError, match="lacks the special tokens"):
        Vocab.from_file(tmp_path / "bad.jsonl")
    # unigram perplexity by hand: targets a, <UNK>, </S>; add-one over 5 types, total 21 + 5
    expected = math.exp(-(math.log(6 / 26) + math.log(4 / 26) + math.log(5 / 26)) / 3)
    assert math.isclose(unigram_perplexity(vocab, [["a", "zzz"]]), expected)


def test_plan_and_shard_cover_every_sequence_within_budget():
    rng = numpy.random.default_rng(0)
    seqs = [["w"] * int(n) for n in rng.integers(1, 30, 300)]
    batches = plan(seqs, 128, numpy.random.default_rng(1))
    assert sorted(len(s) for b in batches for s in b) == sorted(len(s) for s in seqs)
    assert all(len(b) == 1 or (max(len(s) for s in b) + 2) * len(b) <= 128 for b in batches)
    batch = batches[0]
    assert sorted(map(id, shard(batch, 0, 2) + shard(batch, 1, 2))) == sorted(map(id, batch))


def test_batch_stream_resumes_at_any_position(corpus):
    stream = BatchStream([corpus, corpus], Tokenizer("en", 30), 128, seed=3, heldout=0.1, chunk_items=100)
    run = stream.start(Position())
    first = [next(run) for _ in range(150)]  # crosses chunks and an epoch
    assert {p.epoch for p, _ in first} == {0, 1, 2} and len({p.offsets for p, _ in first}) > 6
    for index in (16, 35, 100):
        position, _ = first[index]
        restored = Position.restore([position.epoch, list(position.offsets), position.batch], 2)
        resumed = stream.start(restored)
        assert [next(resumed) for _ in range(149 - index)] == first[index + 1 :]
    with pytest.raises(ValueError, match="older spacy-elmo"):
        Position.restore([0, 0, 120, 3], 2)
    with pytest.raises(ValueError, match="read 3 input files, this run has 2"):
        Position.restore([0, [0, 5, 9], 1], 2)


def test_batch_stream_mixes_the_files_in_every_chunk(tmp_path):
    """Files of unlike text are read side by side, in shares by size, and each line is used once per epoch."""
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("".join(f"tweet number {i:04d}\n" for i in range(600)))
    small.write_text("".join(f"alarm set at {i:04d}\n" for i in range(200)))
    stream = BatchStream([big, small], Tokenizer("en", 30), 64, seed=0, heldout=0.0, chunk_items=80)
    epoch0 = []
    chunks = {}
    for position, batch in stream.start(Position()):
        if position.epoch:
            break
        epoch0.extend(batch)
        chunks.setdefault(position.offsets, []).extend(batch)
    assert sorted(" ".join(s) for s in epoch0) == sorted(big.read_text().splitlines() + small.read_text().splitlines())
    assert len(chunks) >= 9
    for sequences in chunks.values():  # every chunk holds both kinds, 3 tweets per request (the sizes)
        tweets = sum(s[0] == "tweet" for s in sequences)
        assert 0 < len(sequences) - tweets and tweets == 3 * (len(sequences) - tweets)


def test_tensorize_targets():
    vocab = Vocab.build(Counter("a b b c".split()), 2, 10, 1)
    batch = tensorize([["b", "a"], ["c"]], vocab, CharIdCache())
    b, a, c = vocab.ids(["b", "a", "c"])
    assert batch.word_ids.tolist() == [[0, b, a, 1], [0, c, 1, 1]]
    assert batch.lengths.tolist() == [4, 3] and batch.n_targets == 5
    assert batch.index.tolist() == [[0, 2, 3, 1], [0, 4, 1, 1]] and batch.char_ids.shape == (5, 50)


# the objective ----------------------------------------------------------------------------------------------

def test_lm_loss_matches_independent_math(tiny_files, tiny_opts, tiny_arrays):
    from spacy_elmo.pretraining.lm import BiLMLanguageModel

    sentences = [["the", "cat", "sat", "zebra"], ["a", "dog"]]
    vocab = Vocab.build(Counter(w for s in sentences for w in s if w != "zebra"), 2, 20, 1)
    lm = BiLMLanguageModel(load_hdf5(*tiny_files), len(vocab), [3]).eval()
    batch = tensorize(sentences, vocab, CharIdCache())
    with torch.no_grad():
        nll = lm(batch.char_ids, batch.index, batch.word_ids, batch.lengths).double()
    expected = numpy.zeros(2)
    head = {name: value.numpy() for name, value in lm.softmax.state_dict().items()}
    for words in sentences:
        fwd, bwd = R.lm_top_states(tiny_arrays, tiny_opts, words)
        ids = [vocab.bos, *vocab.ids(words), vocab.eos]
        lp_f = R.adaptive_log_probs(head, [3], len(vocab), fwd[:-1])
        lp_b = R.adaptive_log_probs(head, [3], len(vocab), bwd[1:])
        expected[0] -= sum(lp_f[t, ids[t + 1]] for t in range(len(ids) - 1))
        expected[1] -= sum(lp_b[t, ids[t]] for t in range(len(ids) - 1))
    numpy.testing.assert_allclose(nll.numpy(), expected, rtol=1e-5)


def test_same_seed_same_run_and_loss_falls(corpus, tmp_path):
    torch.set_num_threads(1)
    config = small_config(max_steps=3)
    run([corpus], tmp_path / "a", config)
    run([corpus], tmp_path / "b", config)
    run([corpus], tmp_path / "c", small_config(max_steps=3, seed=1))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")
    long = run([corpus], tmp_path / "d", small_config(max_steps=40, learning_rate=1e-2, eval_every=40))
    assert long["dev"]["ppl"] < 0.7 * long["unigram_ppl"]
    with pytest.raises(ValueError, match="already holds a run"):
        run([corpus], tmp_path / "a", config)
    with pytest.raises(ValueError, match="pass one"):
        run([corpus], tmp_path / "a", config, resume=True, overwrite=True)
    # --overwrite with text that cannot train loses nothing: the old run stays, resumable
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    before = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="no usable text"):
        run([blank], tmp_path / "a", config, overwrite=True)
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == before
    # --overwrite starts afresh: the run of another seed replaces seed 0's, whose summary goes first
    (tmp_path / "a" / "summary.json").write_text("{}")
    run([corpus], tmp_path / "a", small_config(max_steps=3, seed=1), overwrite=True)
    assert losses(tmp_path / "a") == losses(tmp_path / "c")
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["step"] == 3
    run([corpus], tmp_path / "a", config, overwrite=True)
    with pytest.raises(ValueError, match=r"differ from the checkpoint's: \['seed'\]"):
        run([corpus], tmp_path / "a", small_config(max_steps=4, seed=5), resume=True)
    # an --overwrite stopped before its first checkpoint (here: a budget spent before the first step) leaves
    # its starting biLM beside its head, not the old run's weights beside the new head
    run([corpus], tmp_path / "a", small_config(max_steps=3, seed=2, max_minutes=1e-9), overwrite=True)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["dev"]["ppl"] > 0  # measured at step 0 too
    torch.manual_seed(2)
    start = BiLM(BiLMOptions.from_file(TINY)).state_dict()
    saved = load_native(tmp_path / "a").state_dict()
    assert all(torch.equal(saved[k], start[k]) for k in start)
    load_lm(tmp_path / "a")  # the head and the vocabulary fit the weights


def test_learning_rate_schedule_by_steps_and_by_time():
    from spacy_elmo.pretraining.trainer import lr_factor

    config = small_config(max_steps=110, warmup_steps=10, final_lr=0.1)
    assert [lr_factor(s, config) for s in (0, 9)] == [0.1, 1.0]
    assert lr_factor(10, config) == 1.0 and lr_factor(60, config) == pytest.approx(0.55)
    assert lr_factor(110, config) == pytest.approx(0.1) and lr_factor(500, config) == pytest.approx(0.1)
    # a time budget half spent brings the decay forward; it never slows the step schedule down
    assert lr_factor(20, config, progress=0.5) == pytest.approx(0.55)
    assert lr_factor(100, config, progress=0.5) == lr_factor(100, config)
    assert lr_factor(20, config, progress=1.0) == pytest.approx(0.1)


def test_time_limited_run_ends_annealed(corpus, tmp_path):
    torch.set_num_threads(1)
    config = small_config(max_steps=100_000, warmup_steps=1, max_minutes=0.1, final_lr=0.1)
    summary = run([corpus], tmp_path / "t", config)
    assert 1 < summary["step"] < 100_000  # stopped by the clock, not by max_steps
    rates = [r["lr"] for r in map(json.loads, (tmp_path / "t" / "log.jsonl").read_text().splitlines()) if "lr" in r]
    # the last step starts less than a step's time before the budget ends: at most half of final_lr above it
    assert rates[-1] <= 1.5 * config.final_lr * config.learning_rate and rates == sorted(rates, reverse=True)


# outputs: evaluate, export, continue training ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("trained")
    run([corpus], output, small_config(max_steps=4))
    return output


def test_output_dir_is_a_native_bilm_for_the_elmo_factory(trained, corpus):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(trained)})
    doc = nlp("the cat sat on the mat")
    assert doc._.elmo_data.layers.shape == (3, 6, 32) and doc[0]._.elmo.shape == (32,)
    from spacy_elmo.pipeline.loaders import bilm_loader

    assert all(torch.equal(a, b) for a, b in zip(bilm_loader(str(trained))().state_dict().values(),
                                                  load_native(trained).state_dict().values()))


def test_evaluate_cli_reports_three_perplexities(trained, corpus):
    result = CliRunner().invoke(app, ["evaluate", str(trained), str(corpus), "--max-sequences", "50"])
    assert result.exit_code == 0, result.output
    lm, vocab, head = load_lm(trained)
    seqs = Tokenizer(head["lang"], head["max_length"])([t for _, t in read_items(corpus, 0, CorpusStats())])[:50]
    expected = evaluate(lm, vocab, seqs, 4096, torch.device("cpu"))
    assert math.isclose(expected["ppl"], math.sqrt(expected["fwd_ppl"] * expected["bwd_ppl"]), rel_tol=1e-9)
    for name in ("fwd_ppl", "bwd_ppl", "ppl"):
        assert f"{expected[name]:.2f}" in said(result)


def test_export_then_load_gives_identical_outputs(trained, tmp_path):
    import spacy

    result = CliRunner().invoke(app, ["export", str(trained), str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    options, weights = tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5"
    native, published = load_native(trained), load_bilm(weights, options)
    for (name, a), b in zip(native.state_dict().items(), published.state_dict().values()):
        assert torch.equal(a, b), name
    assert json.loads(options.read_text())["n_tokens_vocab"] == len(Vocab.from_directory(trained))
    docs = []
    for config in ({"weights": str(trained)}, {"weights": str(weights), "options": str(options)}):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config={**config, "mix": "all"})
        docs.append(nlp("A small red dog ran under the big tree !"))
    numpy.testing.assert_array_equal(docs[0]._.elmo, docs[1]._.elmo)


def test_continue_training_a_published_bilm(tiny_files, tiny_arrays, corpus, tmp_path):
    options, weights = tiny_files
    # learning rate 0: the weights go through training and export unchanged
    run([corpus], tmp_path / "same", small_config(max_steps=1, learning_rate=0.0),
             init_weights=weights, init_options=options)
    CliRunner().invoke(app, ["export", str(tmp_path / "same"), str(tmp_path / "exp")])
    import h5py

    with h5py.File(tmp_path / "exp" / "weights.hdf5", "r") as f:
        for name, value in tiny_arrays.items():
            numpy.testing.assert_array_equal(f[name][...], value, err_msg=name)
    # continuing from a pretrain output keeps its vocabulary and LM head
    summary = run([corpus], tmp_path / "more", small_config(max_steps=2, vocab_size=50),
                       init_weights=tmp_path / "same")
    assert Vocab.from_directory(tmp_path / "more") == Vocab.from_directory(tmp_path / "same")
    assert summary["step"] == 2
    with pytest.raises(ValueError, match="does not match the architecture"):
        from spacy_elmo.bilm import preset

        run([corpus], tmp_path / "x", small_config(), options=preset("small"), init_weights=tmp_path / "same")


# the LM's own scores ----------------------------------------------------------------------------------------

SCORED = [["the", "cat", "sat", "on", "the", "mat", "."], ["a", "zyzzyva", "ran"], ["dog"]]


@pytest.fixture(scope="module")
def reference_lm(trained, tmp_path_factory):
    """The trained LM's arrays in the published layout, its head's arrays and its vocabulary, read back with
    h5py and json alone, for the independent float64 maths."""
    import h5py

    out = tmp_path_factory.mktemp("ref")
    result = CliRunner().invoke(app, ["export", str(trained), str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "weights.hdf5", "r") as f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    head = {k: v.numpy() for k, v in torch.load(trained / "lm_head.pt", weights_only=True).items()}
    config = json.loads((trained / "lm_head.json").read_text())
    tokens = [json.loads(line) for line in (trained / "vocab.jsonl").read_text(encoding="utf8").splitlines()]
    return arrays, json.loads((out / "options.json").read_text()), head, config, tokens


def reference_scores(reference_lm, words):
    """Per-target log probabilities (forward: words then </S>; backward: <S> then words) and the two full
    distributions, from the published maths and the adaptive softmax's arrays."""
    arrays, opts, head, config, tokens = reference_lm
    index = {t: i for i, t in enumerate(tokens)}
    ids = [index["<S>"]] + [index.get(w, index["<UNK>"]) for w in words] + [index["</S>"]]
    fwd, bwd = R.lm_top_states(arrays, opts, words)
    fwd_lp = R.adaptive_log_probs(head, config["cutoffs"], len(tokens), fwd[:-1])
    bwd_lp = R.adaptive_log_probs(head, config["cutoffs"], len(tokens), bwd[1:])
    steps = numpy.arange(len(words) + 1)
    return fwd_lp[steps, ids[1:]], bwd_lp[steps, ids[:-1]], fwd_lp, bwd_lp


def test_sentence_scores_match_the_reference_maths(trained, reference_lm):
    from spacy_elmo.pretraining import LMScorer

    scores = LMScorer.from_dir(trained).score(SCORED)
    for words, score in zip(SCORED, scores):
        fwd, bwd, _, _ = reference_scores(reference_lm, words)
        numpy.testing.assert_allclose(score.fwd_log_probs, fwd, atol=1e-4)
        numpy.testing.assert_allclose(score.bwd_log_probs, bwd, atol=1e-4)
        assert score.n_targets == len(words) + 1
        assert score.fwd_ppl == pytest.approx(numpy.exp(-fwd.mean()), rel=1e-4)
        assert score.ppl == pytest.approx(numpy.exp(-(fwd.mean() + bwd.mean()) / 2), rel=1e-4)
    assert [s.n_unknown for s in scores] == [0, 1, 0]


def test_sentence_scores_do_not_depend_on_batch_mates_and_add_up_to_evaluate(trained, corpus):
    from spacy_elmo.pretraining import LMScorer
    from spacy_elmo.pretraining.scores import ScoreTotals

    lm, vocab, head = load_lm(trained)
    seqs = Tokenizer(head["lang"], head["max_length"])([t for _, t in read_items(corpus, 0, CorpusStats())])[:40]
    together = LMScorer(lm, vocab, batch_tokens=64).score(seqs)
    alone = [LMScorer(lm, vocab).score([s])[0] for s in seqs[:5]]
    for a, b in zip(alone, together):
        numpy.testing.assert_allclose(a.fwd_log_probs, b.fwd_log_probs, atol=1e-5)
        numpy.testing.assert_allclose(a.bwd_log_probs, b.bwd_log_probs, atol=1e-5)
    expected = evaluate(lm, vocab, seqs, 4096, torch.device("cpu"))
    n = sum(s.n_targets for s in together)
    assert n == expected["tokens"]
    assert math.exp(-sum(s.fwd_log_prob for s in together) / n) == pytest.approx(expected["fwd_ppl"], rel=1e-5)
    assert math.exp(-sum(s.bwd_log_prob for s in together) / n) == pytest.approx(expected["bwd_ppl"], rel=1e-5)
    # the running totals that `evaluate --per-line` keeps instead of the scores
    totals = ScoreTotals()
    for score in together:
        totals.add(score)
    assert (totals.n_targets, totals.n_sequences) == (n, len(seqs))
    for key in ("fwd_ppl", "bwd_ppl", "ppl"):
        assert getattr(totals, key) == pytest.approx(expected[key], rel=1e-5)


def test_top_k_words_match_the_reference_distribution_and_never_see_their_slot(trained, reference_lm):
    from spacy_elmo.pretraining import LMScorer

    scorer = LMScorer.from_dir(trained)
    tokens = reference_lm[4]
    words = SCORED[0]
    _, _, fwd_lp, bwd_lp = reference_scores(reference_lm, words)
    for position in (0, 3, len(words)):
        top = scorer.predict(words, position, k=5)
        best = numpy.argsort(-fwd_lp[position])[:5]
        assert [w for w, _ in top] == [tokens[i] for i in best]
        numpy.testing.assert_allclose([p for _, p in top], numpy.exp(fwd_lp[position][best]), atol=1e-5)
        changed = words[:position] + ["dog"] * (len(words) - position)
        assert [w for w, _ in scorer.predict(changed, position, k=5)] == [w for w, _ in top]
    for position in (-1, 2, len(words) - 1):
        top = scorer.predict(words, position, k=3, direction="backward")
        best = numpy.argsort(-bwd_lp[position + 1])[:3]
        assert [w for w, _ in top] == [tokens[i] for i in best]
        changed = ["dog"] * (position + 1) + words[position + 1 :]
        assert [w for w, _ in scorer.predict(changed, position, k=3, direction="backward")] == [w for w, _ in top]
    everything = scorer.predict(words, 2, k=len(tokens))
    assert math.fsum(p for _, p in everything) == pytest.approx(1.0, abs=1e-5)


def test_scores_need_an_lm_head_and_valid_positions(trained, reference_lm, tmp_path):
    from spacy_elmo.pretraining import LMScorer

    published = tmp_path / "published"
    R.write_published(published, reference_lm[1], reference_lm[0])
    with pytest.raises(ValueError, match="published biLMs have no LM head"):
        LMScorer.from_dir(published / "weights.hdf5")
    CliRunner().invoke(app, ["export", str(trained), str(tmp_path / "exported")])
    with pytest.raises(ValueError, match="has no LM head"):
        LMScorer.from_dir(tmp_path / "exported")
    scorer = LMScorer.from_dir(trained)
    with pytest.raises(ValueError, match=r"forward position must be in 0\.\.3 for 3 tokens, got 4"):
        scorer.predict(["a", "b", "c"], 4)
    with pytest.raises(ValueError, match=r"backward position must be in -1\.\.2"):
        scorer.predict(["a", "b", "c"], -2, direction="backward")
    with pytest.raises(ValueError, match="direction must be one of"):
        scorer.predict(["a"], 0, direction="left")
    with pytest.raises(ValueError, match="Sequence 1 is empty"):
        scorer.score([["a"], []])


def test_a_damaged_lm_head_is_named(trained, tmp_path):
    import shutil

    for name, damage, expected in [
        ("lm_head.json", lambda text: text.replace('"cutoffs"', '"cut"'), r"lm_head.json: not an LM head .*no 'cutoffs'"),
        ("lm_head.json", lambda text: text.replace('"vocab_size": ', '"vocab_size": 3, "x": '), "cutoffs must rise"),
        ("lm_head.json", lambda text: text[: len(text) // 2], r"lm_head.json: not an LM head"),
    ]:
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(trained, copy)
        (copy / name).write_text(damage((copy / name).read_text()))
        with pytest.raises(ValueError, match=expected):
            load_lm(copy)
    copy = tmp_path / "truncated"
    shutil.copytree(trained, copy)
    (copy / "lm_head.pt").write_bytes((copy / "lm_head.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match="lm_head.pt cannot be read"):
        load_lm(copy)
    state = torch.load(trained / "lm_head.pt", weights_only=True)
    torch.save({k: v[:-1] if v.dim() else v for k, v in state.items()}, copy / "lm_head.pt")
    with pytest.raises(ValueError, match="lm_head.pt does not fit lm_head.json"):
        load_lm(copy)


def test_evaluate_per_line_writes_one_record_per_usable_line(trained, tmp_path):
    from spacy_elmo.pretraining import LMScorer

    text = tmp_path / "heldout.txt"
    long_line = " ".join(["the cat sat on the mat ."] * 10)  # 70 tokens: cut into pieces of 30
    text.write_bytes(b"the cat sat .\n\n\xff\xfe bad\nthe dog ran under a tree !\n" + long_line.encode() + b"\na zyzzyva")
    out = tmp_path / "lines.jsonl"
    result = CliRunner().invoke(app, ["evaluate", str(trained), str(text), "--per-line", str(out), "--token-scores"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert [(r["file"], r["line"]) for r in records] == [(str(text), n) for n in (1, 4, 5, 6)]
    assert "1 blank skipped" in said(result) and "1 undecodable skipped" in said(result)
    scorer = LMScorer.from_dir(trained)
    words = long_line.split()
    pieces = scorer.score([words[:30], words[30:60], words[60:]])
    assert records[2]["tokens"] == words and records[2]["n_targets"] == 70 + 3
    numpy.testing.assert_allclose(records[2]["fwd_log_probs"], [x for p in pieces for x in p.fwd_log_probs], atol=1e-6)
    first = scorer.score([["the", "cat", "sat", "."]])[0]
    assert records[0]["fwd_log_prob"] == pytest.approx(first.fwd_log_prob, abs=1e-6)
    assert records[0]["ppl"] == pytest.approx(first.ppl, rel=1e-6) and records[3]["n_unknown"] == 1
    total_fwd = math.exp(-sum(r["fwd_log_prob"] for r in records) / sum(r["n_targets"] for r in records))
    assert f"{total_fwd:.2f}" in said(result)
    to_stdout = CliRunner().invoke(app, ["evaluate", str(trained), str(text), "--per-line", "-"])
    assert [json.loads(line)["line"] for line in to_stdout.stdout.splitlines()] == [1, 4, 5, 6]
    assert "perplexity" in to_stdout.stderr
