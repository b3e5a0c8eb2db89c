"""``pretrain --precision``: float32, or bfloat16 autocast (``auto``: on CUDA with bfloat16); bfloat16 reaches
the biLM's products and learns as float32 does."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from helpers import TINY, said, small_config, synthetic_corpus
from spacy_elmo.bilm import BiLMOptions, cpu_kernels
from spacy_elmo.bilm.characters import words_to_ids
from spacy_elmo.bilm.model import BiLM
from spacy_elmo.bilm.precision import native_bfloat16
from spacy_elmo.cli import app
from spacy_elmo.pretraining import pretrain
from spacy_elmo.pretraining.trainer import autocast_dtype

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synthetic_corpus(tmp_path_factory.mktemp("corpus"), 600)


def test_precision_resolves_by_the_device():
    assert autocast_dtype("float32", CPU) == torch.float32
    assert autocast_dtype("bfloat16", CPU) == torch.bfloat16
    assert autocast_dtype("auto", CPU) == torch.float32  # whether or not the CPU has native bfloat16
    assert not native_bfloat16(torch.device("meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_precision_on_cuda_is_bfloat16_where_supported():
    cuda = torch.device("cuda")
    assert autocast_dtype("auto", cuda) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)


def test_unknown_precision_is_refused_by_name(corpus, tmp_path):
    with pytest.raises(ValueError, match="precision must be one of .* got 'half'"):
        small_config(precision="half").check()
    result = CliRunner().invoke(app, ["pretrain", str(corpus), "-o", str(tmp_path / "x"), "-c", str(TINY),
                                      "--precision", "half"])
    assert result.exit_code == 1 and "got 'half'" in said(result)
    assert not (tmp_path / "x").exists()


def product_dtypes(bilm: BiLM, ids: torch.Tensor) -> set:
    """The output dtypes of the biLM's convolutions and linear layers in one forward."""
    seen = set()

    def hook(module, inputs, output):
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        bilm(ids)
    finally:
        handle.remove()
    return seen


def test_bfloat16_autocast_reaches_the_products_in_training_but_not_exact_inference():
    torch.manual_seed(0)
    bilm = BiLM(BiLMOptions.from_file(TINY))
    ids = torch.from_numpy(words_to_ids(["They", "can't", "trust", "it"])).unsqueeze(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert product_dtypes(bilm, ids) == {torch.bfloat16}  # autograd records: pretraining's autocast holds
        with torch.no_grad(), cpu_kernels.disabled():
            assert product_dtypes(bilm, ids) == {torch.float32}  # exact inference stays float32
            inside = bilm(ids)
    with torch.no_grad(), cpu_kernels.disabled():
        assert torch.equal(inside, bilm(ids))


def test_bfloat16_pretraining_learns_as_float32_does(corpus, tmp_path):
    torch.set_num_threads(1)
    runs = {}
    for precision in ("float32", "bfloat16"):
        config = small_config(max_steps=30, learning_rate=1e-2, eval_every=30, precision=precision)
        runs[precision] = pretrain([corpus], tmp_path / precision, config, options=BiLMOptions.from_file(TINY))
    assert runs["bfloat16"]["precision"] == "bfloat16" and runs["float32"]["precision"] == "float32"
    ppl = {k: r["dev"]["ppl"] for k, r in runs.items()}
    assert ppl["float32"] < 0.7 * runs["float32"]["unigram_ppl"]  # the runs learnt something to compare
    assert ppl["bfloat16"] == pytest.approx(ppl["float32"], rel=0.03)
    logged = [json.loads(line) for line in (tmp_path / "bfloat16" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["loss"] for r in logged if "loss" in r)  # no NaN
