"""`pretrain --init-weights` from an ELMoForManyLangs model: a new LM head over the text's vocabulary,
the model's own token ids and word embedding kept, resume, and export back to its layout."""
import json
from pathlib import Path

import numpy
import torch
from typer.testing import CliRunner

from spacy_elmo.bilm import Embedder
from spacy_elmo.cli import app
from spacy_elmo.io import load_bilm, load_native
from helpers import said, synthetic_corpus

SMALL = Path(__file__).parent / "goldens" / "efml_small"


def pretrain(*args):
    result = CliRunner().invoke(app, ["pretrain", *map(str, args)])
    assert result.exit_code == 0, said(result)
    return said(result)


def test_continue_training_an_efml_model(tmp_path):
    (tmp_path / "text").mkdir()
    corpus = synthetic_corpus(tmp_path / "text", 200)
    common = ["--batch-tokens", 256, "--max-length", 30, "--vocab-size", 60, "--min-count", 1, "--warmup-steps", 1,
              "--eval-every", 100, "--log-every", 1, "--dropout", 0.0, "--device", "cpu", "--lang", "de"]
    # learning rate 0: the biLM goes through training unchanged
    text = pretrain(corpus, "-o", tmp_path / "same", "--init-weights", SMALL, "--max-steps", 1, "--lr", 0, *common)
    assert "has no LM head (softmax): training a new one" in text
    source, same = load_bilm(SMALL), load_native(tmp_path / "same")
    assert same.tokens == source.tokens
    for (name, a), b in zip(source.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), name
    # training changes every part, the word embedding included; a resumed run continues it
    pretrain(corpus, "-o", tmp_path / "run", "--init-weights", SMALL, "--max-steps", 2, "--checkpoint-every", 1,
             "--lr", 0.05, *common)
    pretrain(corpus, "-o", tmp_path / "run", "--resume", "--max-steps", 4, "--checkpoint-every", 1, "--lr", 0.05, *common)
    assert [json.loads(l)["step"] for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
            if "loss" in json.loads(l)] == [1, 2, 3, 4]
    trained = load_native(tmp_path / "run")
    words = "token_encoder.words.embedding.weight"
    assert not torch.equal(trained.state_dict()[words], source.state_dict()[words])
    # export: the package's layout again, read back to the same layers
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), str(tmp_path / "exported")])
    assert result.exit_code == 0, said(result)
    sentences = [["Die", "Katze", "schläft"], ["Кот", "спит"]]
    for a, b in zip(Embedder(trained).embed(sentences), Embedder(load_bilm(tmp_path / "exported")).embed(sentences)):
        numpy.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
