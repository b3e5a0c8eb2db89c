"""What the README promises and no other test checked: gradient clipping, ``--dev`` held-out files, the
refusal of the old component-level settings, the JSONL training log, ``doc_cleaner``, the
``TorchBiLSTMEncoder`` tok2vec, the bfloat16 emulation warning, ``embed --precision fast`` and the
``max_batch_tokens`` budget."""
import json

import numpy
import pytest
import spacy
import torch
from hypothesis import given, settings as hsettings, strategies as st
from spacy.tokens import Doc, DocBin
from thinc.api import ConfigValidationError
from typer.testing import CliRunner

import reference_math as R
from helpers import TINY, build, said, small_config, synthetic_corpus, synthetic_text, train_steps
from spacy_elmo.bilm import BiLMOptions, Embedder
from spacy_elmo.bilm.embedder import plan_batches
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm, load_native
from spacy_elmo.pretraining import pretrain


# the component ----------------------------------------------------------------------------------------------

OLD_SETTINGS = {"window": 5, "max_batch_tokens": 64, "cache_size": 0, "doc_cache_size": 0, "device": "cpu",
                "precision": "fast", "frozen": False}


@pytest.mark.parametrize("key", sorted(OLD_SETTINGS))
def test_old_component_level_settings_are_refused_by_name(key):
    """The biLM settings live on ``[components.elmo.model]`` now: on the component they are an error that
    names the key, not silently ignored."""
    nlp = spacy.blank("en")
    with pytest.raises(ConfigValidationError) as err:
        nlp.add_pipe("elmo", config={key: OLD_SETTINGS[key]})
    assert f"elmo -> {key}" in str(err.value) and "unexpected argument" in str(err.value)


def test_doc_cleaner_drops_the_layers(tiny_files):
    options, weights = tiny_files
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                 "model": {"doc_cache_size": 0}})
    kept = nlp("ELMo is back .")
    nlp.add_pipe("doc_cleaner", config={"attrs": {"_.elmo_data": None}})
    cleaned = nlp("ELMo is back .")
    assert kept._.elmo_data is not None and cleaned._.elmo_data is None
    # serialised, the layers' bytes are gone (the rest of the Doc is a few hundred bytes)
    assert 3 * len(DocBin(docs=[cleaned], store_user_data=True).to_bytes()) < \
        len(DocBin(docs=[kept], store_user_data=True).to_bytes())


def test_torch_bilstm_encoder_tok2vec_trains(tmp_path, tiny_files):
    encode = {"@architectures": "spacy.TorchBiLSTMEncoder.v1", "width": 32, "depth": 1, "dropout": 0.0}
    nlp = build("ner_elmo", tmp_path, tiny_files, **{"components.ner.model.tok2vec.encode": encode,
                                                     "training.optimizer.learn_rate": 0.005})
    tok2vec = nlp.get_pipe("ner").model.get_ref("tok2vec")
    assert any(node.name.startswith("pytorch") or "lstm" in node.name.lower() for node in tok2vec.walk())
    history = train_steps(nlp, 20)
    assert numpy.mean(history[-3:]) < 0.5 * numpy.mean(history[:3]), history


def test_jsonl_logger_writes_every_evaluation(tmp_path):
    """The records of ``spacy-elmo.JSONLLogger.v1``, as ``spacy train`` would hand them in."""
    from spacy.util import registry

    path = tmp_path / "logs" / "train.jsonl"
    setup = registry.loggers.get("spacy-elmo.JSONLLogger.v1")(path=str(path))
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    log_step, finalize = setup(nlp, stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))
    infos = [{"epoch": 0, "step": step, "score": score, "other_scores": {"ents_f": score, "ents_per_type": {}},
              "losses": {"ner": loss}, "checkpoints": [], "seconds": step * 2, "words": step * 100}
             for step, score, loss in ((0, 0.0, 12.5), (200, 0.25, 3.0), (400, 0.5, 1.5))]
    for info in infos:
        log_step(info)
    log_step(None)  # a step without evaluation: nothing written
    finalize()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [{"step": i["step"], "epoch": 0, "score": i["score"], "seconds": i["seconds"], "words": i["words"],
                        "scores": {"ents_f": i["score"]}, "losses": {"ner": i["losses"]["ner"]}} for i in infos]


# pretraining ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic_corpus(tmp_path_factory.mktemp("promises"), 300)


def test_gradient_clipping_bounds_the_step(corpus, tmp_path):
    """With a clip far below the gradient norm, Adam's first step shrinks to almost nothing (its epsilon
    then dominates); with a large clip it is the learning rate, whatever the gradient's size."""
    from spacy_elmo.bilm import BiLM

    options = BiLMOptions.from_file(TINY)
    torch.manual_seed(0)  # the run's seed: its starting weights
    before = BiLM(options).state_dict()
    moved = {}
    for clip in (1e-12, 1e6):
        output = tmp_path / f"clip-{clip}"
        pretrain([corpus], output, small_config(max_steps=1, warmup_steps=1, dropout=0.0, clip=clip), options=options)
        after = load_native(output).state_dict()
        moved[clip] = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert moved[1e6] > 0.5 * 2e-3  # about the learning rate
    assert moved[1e-12] < 1e-3 * moved[1e6]


def test_dev_files_are_the_held_out_text(corpus, tmp_path):
    """``--dev`` files: the run's held-out perplexity is the perplexity of those files, as ``evaluate``
    measures it (``--heldout`` then picks no lines)."""
    dev = tmp_path / "dev.txt"
    dev.write_text(synthetic_text(40, seed=7))
    result = CliRunner().invoke(app, ["pretrain", str(corpus), "-o", str(tmp_path / "run"), "-c", str(TINY),
                                      "--dev", str(dev), "--max-steps", "3", "-b", "256", "--vocab-size", "100",
                                      "--min-count", "1", "--warmup-steps", "1", "--heldout", "0.5"])
    assert result.exit_code == 0, said(result)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    scored = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), str(dev), "-b", "256"])
    assert scored.exit_code == 0, said(scored)
    text = said(scored)
    assert f"{summary['dev']['tokens']} targets per direction" in text  # every dev line, and only those
    for name, key in (("forward", "fwd_ppl"), ("backward", "bwd_ppl"), ("average", "ppl")):
        assert f"{name} {summary['dev'][key]:.2f}" in text


def test_bfloat16_emulation_is_warned_about(corpus, tmp_path, monkeypatch, capsys):
    """Where the CPU has no native bfloat16 products (simulated here when this CPU has them) a bfloat16
    run says it is emulated; where it has them, it does not."""
    from spacy_elmo.pretraining import trainer

    options = BiLMOptions.from_file(TINY)
    config = small_config(max_steps=1, precision="bfloat16")
    native = trainer.native_bfloat16(torch.device("cpu"))
    pretrain([corpus], tmp_path / "a", config, options=options)
    assert ("emulated, many times slower" in capsys.readouterr().out) == (not native)
    monkeypatch.setattr(trainer, "native_bfloat16", lambda device: False)
    pretrain([corpus], tmp_path / "b", config, options=options)
    assert "Warning: cpu has no native bfloat16 products: they are emulated" in capsys.readouterr().out


# embedding --------------------------------------------------------------------------------------------------

def test_embed_precision_fast(tiny_files, tiny_opts, tiny_arrays, tmp_path):
    import pyarrow.parquet as pq

    (tmp_path / "in.txt").write_text("They can't trust their friends .\nHe has a trust fund .\n")
    options, weights = tiny_files
    rows = {}
    for mode in ("exact", "fast"):
        result = CliRunner().invoke(app, ["embed", str(tmp_path / "in.txt"), "-w", str(weights), "-c", str(options),
                                          "-o", str(tmp_path / mode), "--precision", mode, "--dtype", "float32",
                                          "--tokenized"])
        assert result.exit_code == 0, said(result)
        assert json.loads((tmp_path / mode / "manifest.json").read_text())["settings"]["precision"] == mode
        table = pq.read_table(tmp_path / mode / "shards")
        rows[mode] = [numpy.stack([numpy.asarray(table.column(f"layer_{k}")[i].as_py(), dtype=numpy.float32)
                                   for k in range(3)]) for i in range(table.num_rows)]
        words = [list(w) for w in table.column("tokens").to_pylist()]
    for exact, fast, w in zip(rows["exact"], rows["fast"], words):
        want = R.elmo_layers(tiny_arrays, tiny_opts, w)
        assert numpy.abs(exact - want).max() <= 1e-4
        assert 1e-3 < numpy.abs(fast - want).max() <= 0.03 * numpy.abs(want).max()


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60), st.integers(1, 2000))
def test_max_batch_tokens_bounds_every_batch(lengths, budget):
    """Every batch's padded size (longest + 2 sentence marks, times its sequences) fits the budget, unless it
    is one sequence longer than the budget; every non-empty sequence is in exactly one batch."""
    batches = plan_batches(lengths, budget)
    assert sorted(i for b in batches for i in b) == [i for i, n in enumerate(lengths) if n]
    for batch in batches:
        assert len(batch) == 1 or (max(lengths[i] for i in batch) + 2) * len(batch) <= budget


def test_the_embedder_runs_batches_within_its_budget(tiny_files, monkeypatch):
    embedder = Embedder(load_bilm(tiny_files[1], tiny_files[0]), max_batch_tokens=40, cache_size=0)
    shapes = []
    run = embedder.batch_layers
    monkeypatch.setattr(embedder, "batch_layers", lambda s: shapes.append((len(s), max(map(len, s)) + 2)) or run(s))
    sentences = [["w"] * n for n in (1, 3, 5, 8, 13, 2, 2, 2, 30, 50)]
    embedder.embed(sentences)
    assert sum(b for b, _ in shapes) == len(sentences) and len(shapes) > 3
    assert all(b * t <= 40 or b == 1 for b, t in shapes), shapes
