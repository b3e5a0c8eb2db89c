"""Training NER and textcat on ELMo through the shipped configs, with a tiny biLM in the published layout."""
import importlib.util
import io
import shutil
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
import torch
from spacy.training.initialize import init_nlp
from spacy.training.loop import train

from helpers import CAT_DATA, NER_DATA, TINY_WIDTH, build, examples_for, listener_mix, task_config, train_steps
from spacy_elmo.layers.scalar_mix import layer_weights

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def bilm_state(nlp) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in nlp.get_pipe("elmo").bilm.state_dict().items()}


def falls(history: List[float]) -> bool:
    return numpy.mean(history[-3:]) < 0.5 * numpy.mean(history[:3])


@pytest.mark.parametrize("name", ["ner_elmo", "textcat_elmo"])
def test_frozen_training_learns_the_mix_and_keeps_the_bilm(name, tmp_path, tiny_files):
    task = name.split("_")[0]
    nlp = build(name, tmp_path, tiny_files)
    mix = listener_mix(nlp, task)
    before = bilm_state(nlp)
    history = train_steps(nlp, 2)  # the parser's output layer starts at zero: no gradient at first
    # an update without an optimizer: the mix parameters receive gradients
    examples = examples_for(nlp)
    nlp.get_pipe("elmo").update(examples)
    nlp.get_pipe(task).update(examples)
    assert numpy.abs(mix.get_grad("s")).sum() > 0 and numpy.abs(mix.get_grad("gamma")).sum() > 0
    history += train_steps(nlp, 25)
    assert falls(history), history
    weights, gamma = layer_weights(mix)
    assert not numpy.allclose(weights, 1 / 3, atol=1e-4) and gamma != 1.0
    assert sum(weights) == pytest.approx(1.0)
    after = nlp.get_pipe("elmo").bilm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fine_tuning_updates_the_bilm(tmp_path, tiny_files):
    # no weight decay: a weight that changes has had a gradient
    nlp = build("ner_elmo", tmp_path, tiny_files, **{"components.elmo.model.frozen": False, "training.optimizer.L2": 0.0})
    elmo = nlp.get_pipe("elmo")
    before = bilm_state(nlp)
    history = train_steps(nlp, 3)
    # gradients reach every part of the biLM through the listener, once the NER passes them back
    examples = examples_for(nlp)
    for p in elmo.bilm.parameters():
        p.grad = None
    elmo.update(examples)
    assert all(p.grad is None for p in elmo.bilm.parameters())  # the biLM has not even run yet
    nlp.get_pipe("ner").update(examples)
    grads = {k: p.grad for k, p in elmo.bilm.named_parameters()}
    for k in ("token_encoder.embedding.weight", "token_encoder.projection.weight", "lstm.layers.1.weight_ih"):
        assert grads[k] is not None and grads[k].abs().sum() > 0, k
    elmo.finish_update(nlp.create_optimizer())
    history += train_steps(nlp, 22)
    assert falls(history), history
    after = elmo.bilm.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in ("token_encoder.projection.weight", "lstm.layers.0.weight_ih"))


def test_frozen_and_annotating_elmo(tmp_path, tiny_files):
    """``elmo`` in frozen_components and annotating_components: the listener reads ``doc._.elmo_data``."""
    options, weights = tiny_files
    nlp = build("ner_elmo", tmp_path, tiny_files, **{
        "components.elmo.weights": str(weights), "components.elmo.options": str(options),
        "training.frozen_components": ["elmo"], "training.annotating_components": ["elmo"],
    })
    before = bilm_state(nlp)
    mix = listener_mix(nlp, "ner")
    history = train_steps(nlp, 25, exclude=["elmo"], annotates=["elmo"])
    assert falls(history), history
    assert not numpy.allclose(layer_weights(mix)[0], 1 / 3, atol=1e-4)
    after = nlp.get_pipe("elmo").bilm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_frozen_without_annotating_is_a_clear_error(tmp_path, tiny_files):
    options, weights = tiny_files
    nlp = build("ner_elmo", tmp_path, tiny_files, **{
        "components.elmo.weights": str(weights), "components.elmo.options": str(options),
    })
    with pytest.raises(ValueError, match="annotating_components"):
        nlp.update(examples_for(nlp), exclude=["elmo"])


def test_spacy_train_loop_with_frozen_annotating_elmo(tmp_path, tiny_files):
    """The full training loop (evaluation, checkpoints) with the frozen-listener setup that has failed
    in spaCy before ("Cannot get dimension 'nO'")."""
    options, weights = tiny_files
    config = task_config("ner_elmo", tmp_path, tiny_files, {
        "components.elmo.weights": str(weights), "components.elmo.options": str(options),
        "training.frozen_components": ["elmo"], "training.annotating_components": ["elmo"],
        "training.max_steps": 6, "training.eval_frequency": 3,
    })
    nlp = init_nlp(config)
    (tmp_path / "out").mkdir()
    train(nlp, tmp_path / "out", stdout=io.StringIO())
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.pipe_names == ["elmo", "ner"]
    weights_, gamma = layer_weights(listener_mix(loaded, "ner"))
    assert not numpy.allclose(weights_, 1 / 3, atol=1e-5) or gamma != 1.0


@pytest.mark.parametrize("name", ["ner_elmo", "textcat_elmo"])
def test_save_load_gives_identical_predictions_without_the_weight_files(name, tmp_path, tiny_files):
    task = name.split("_")[0]
    copied = tmp_path / "weights"
    copied.mkdir()
    files = tuple(Path(shutil.copy(f, copied)) for f in tiny_files)
    nlp = build(name, tmp_path, files)
    train_steps(nlp, 5)
    texts = [text for text, _ in NER_DATA + CAT_DATA]
    expected = list(nlp.pipe(texts))
    nlp.to_disk(tmp_path / "pipeline")
    for f in files:
        f.unlink()
    loaded = spacy.load(tmp_path / "pipeline")
    got = list(loaded.pipe(texts))
    for a, b in zip(expected, got):
        numpy.testing.assert_array_equal(a._.elmo_data.layers, b._.elmo_data.layers)
        if task == "ner":
            assert [(e.start, e.end, e.label_) for e in a.ents] == [(e.start, e.end, e.label_) for e in b.ents]
        else:
            assert a.cats == b.cats
    assert layer_weights(listener_mix(nlp, task)) == layer_weights(listener_mix(loaded, task))
    # the script that prints the learned mixes reads the same from the pipeline directory
    spec = importlib.util.spec_from_file_location("show_layer_weights", SCRIPTS / "show_layer_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shown = script.learned_mixes(tmp_path / "pipeline")
    assert list(shown) == [task]
    assert (shown[task]["s"], shown[task]["gamma"]) == layer_weights(listener_mix(nlp, task))


@pytest.mark.parametrize("name", ["ner_baseline", "textcat_baseline"])
def test_baselines_train_without_elmo(name, tmp_path):
    nlp = build(name, tmp_path)
    assert "elmo" not in nlp.pipe_names
    assert falls(train_steps(nlp, 25))


def test_baseline_is_the_elmo_model_without_elmo(tmp_path, tiny_files):
    """The same layers and sizes, but for the task mix and the merge layer's ELMo input columns."""

    def param_shapes(model):
        return [
            (node.name, name, node.get_param(name).shape)
            for node in model.walk() for name in node.param_names
            if node.has_param(name) and node.name != "elmo_scalar_mix"
        ]

    elmo = param_shapes(build("ner_elmo", tmp_path / "a", tiny_files).get_pipe("ner").model)
    base = param_shapes(build("ner_baseline", tmp_path / "b").get_pipe("ner").model)
    assert len(elmo) == len(base)
    differ = [(a, b) for a, b in zip(elmo, base) if a != b]
    assert len(differ) == 1
    (name, param, shape_elmo), (_, _, shape_base) = differ[0]
    assert (name, param) == ("maxout", "W") and shape_elmo[:-1] == shape_base[:-1]
    assert shape_elmo[-1] == shape_base[-1] + TINY_WIDTH
