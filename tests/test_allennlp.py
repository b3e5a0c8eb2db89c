"""``spacy_elmo.allennlp`` used as AllenNLP code uses it: a tagger trained with ``Elmo`` inside, the
published character rules for any token, stateless outputs, ``embed_file``'s layout and bad inputs."""
import json

import h5py
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_math as R
from spacy_elmo.allennlp import ConfigurationError, Elmo, ElmoEmbedder, batch_to_ids
from spacy_elmo.allennlp.elmo import ElmoBiLm
from spacy_elmo.io import load_bilm, save_native

SENTENCES = [["the", "cat", "sat"], ["a", "dog", "ran", "home", "fast"], ["cats", "run"], ["the", "dog", "sat"]]
TAGS = [[0, 1, 2], [0, 1, 2, 3, 3], [1, 2], [0, 1, 2]]


# -- batch_to_ids ------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(["<S>", "</S>", "<s>"])), max_size=6),
                min_size=1, max_size=4))
def test_batch_to_ids_follows_the_published_rules(batch):
    ids = batch_to_ids(batch).numpy()
    assert ids.shape == (len(batch), max(len(s) for s in batch), 50)
    for row, sentence in enumerate(batch):
        for position in range(ids.shape[1]):
            want = R.char_ids(sentence[position]) if position < len(sentence) else [0] * 50
            assert ids[row, position].tolist() == want


# -- an AllenNLP-style training loop -------------------------------------------------------------------


class Tagger(torch.nn.Module):
    def __init__(self, options, weights, requires_grad: bool) -> None:
        super().__init__()
        self.elmo = Elmo(options, weights, num_output_representations=1, requires_grad=requires_grad, dropout=0.1)
        self.out = torch.nn.Linear(self.elmo.get_output_dim(), 4)

    def forward(self, character_ids, tags):
        elmo = self.elmo(character_ids)
        logits = self.out(elmo["elmo_representations"][0])
        mask = elmo["mask"]
        return torch.nn.functional.cross_entropy(logits[mask], tags[mask])


def bilm_state(tagger: Tagger):
    return {k: v.detach().clone() for k, v in tagger.elmo._elmo_lstm.bilm.state_dict().items()}


@pytest.mark.parametrize("requires_grad", [False, True])
def test_training_loop(tiny_files, requires_grad):
    options, weights = tiny_files
    torch.manual_seed(0)
    tagger = Tagger(options, weights, requires_grad)
    bilm_params = list(tagger.elmo._elmo_lstm.bilm.parameters())
    assert all(p.requires_grad == requires_grad for p in bilm_params)
    head = [p for n, p in tagger.named_parameters() if p.requires_grad and "_elmo_lstm" not in n]
    # as AllenNLP configs do: a smaller learning rate for the biLM than for the task's layers
    optimizer = torch.optim.Adam([{"params": head}, {"params": bilm_params, "lr": 1e-3}], lr=0.05)
    ids = batch_to_ids(SENTENCES)
    tags = torch.zeros(ids.shape[:2], dtype=torch.long)
    for row, labels in enumerate(TAGS):
        tags[row, : len(labels)] = torch.tensor(labels)
    before, mix_before = bilm_state(tagger), [p.detach().clone() for p in tagger.elmo.scalar_mix_0.parameters()]
    tagger.train()
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = tagger(ids, tags)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = bilm_state(tagger)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if requires_grad:
        assert len(changed) > len(before) // 2  # char CNN and LSTM alike
        assert any(k.startswith("token_encoder") for k in changed) and any(k.startswith("lstm") for k in changed)
    else:
        assert changed == []
        assert all(p.grad is None for p in bilm_params)
    # the scalar mix learns in both cases: s_j and gamma
    mix_after = list(tagger.elmo.scalar_mix_0.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(mix_before, mix_after))
    assert len(mix_after) == 4


def test_eval_after_training_matches_a_fresh_forward(tiny_files):
    """The biLM's kernel weight caches follow the optimiser's updates."""
    options, weights = tiny_files
    tagger = Tagger(options, weights, requires_grad=True)
    ids = batch_to_ids(SENTENCES)
    tagger.eval()
    with torch.no_grad():
        tagger.elmo(ids)  # fills the inference caches with the old weights
    optimizer = torch.optim.SGD(tagger.parameters(), lr=0.5)
    tagger.train()
    tagger(ids, torch.zeros(ids.shape[:2], dtype=torch.long)).backward()
    optimizer.step()
    tagger.eval()
    with torch.no_grad():
        cached = tagger.elmo(ids)["elmo_representations"][0]
    graded = tagger.elmo(ids)["elmo_representations"][0].detach()  # grad on: the plain forward
    torch.testing.assert_close(cached, graded, atol=1e-5, rtol=0)


def test_dropout_after_the_mix(tiny_files):
    options, weights = tiny_files
    elmo = Elmo(options, weights, 1, dropout=0.5)
    ids = batch_to_ids(SENTENCES)
    with torch.no_grad():
        clean = elmo.eval()(ids)["elmo_representations"][0]
        torch.manual_seed(1)
        dropped = elmo.train()(ids)
    rep = dropped["elmo_representations"][0]
    kept = rep != 0
    torch.testing.assert_close(rep[kept], 2 * clean[kept])  # inverted dropout of the mixed vectors
    assert 0.3 < 1 - kept[clean != 0].float().mean() < 0.7
    assert dropped["mask"].tolist() == [[i < len(s) for i in range(5)] for s in SENTENCES]


# -- stateless --------------------------------------------------------------------------------------


def test_outputs_do_not_depend_on_what_ran_before(tiny_files):
    options, weights = tiny_files
    elmo = Elmo(options, weights, 1, dropout=0.0).eval()
    target = batch_to_ids([SENTENCES[1]])
    with torch.no_grad():
        first = elmo(target)["elmo_representations"][0]
        elmo(batch_to_ids(SENTENCES))
        again = elmo(target)["elmo_representations"][0]
        in_batch = elmo(batch_to_ids(SENTENCES))["elmo_representations"][0][1:2]
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    torch.testing.assert_close(first, in_batch, atol=1e-5, rtol=0)
    embedder = ElmoEmbedder(options, weights)
    alone = embedder.embed_sentence(SENTENCES[1])
    embedder.embed_batch(SENTENCES)
    numpy.testing.assert_allclose(embedder.embed_batch(SENTENCES[::-1])[2], alone, atol=1e-5, rtol=0)


def test_embedder_matches_elmo_layers_and_reference_maths(tiny_files, tiny_opts, tiny_arrays):
    options, weights = tiny_files
    embedder = ElmoEmbedder(options, weights)
    got = list(embedder.embed_sentences(SENTENCES + [[]], batch_size=3))
    assert [g.shape for g in got] == [(3, len(s), 32) for s in SENTENCES] + [(3, 0, 32)]
    for sentence, layers in zip(SENTENCES, got):
        numpy.testing.assert_allclose(layers, R.elmo_layers(tiny_arrays, tiny_opts, sentence), atol=1e-4, rtol=0)
    activations, mask = embedder.batch_to_embeddings(SENTENCES)
    assert activations.shape == (4, 3, 5, 32) and mask.sum(1).tolist() == [len(s) for s in SENTENCES]
    numpy.testing.assert_allclose(activations[1].numpy(), got[1], atol=1e-5, rtol=0)


def test_module_and_native_weights(tiny_files, tmp_path):
    options, weights = tiny_files
    ids = batch_to_ids(SENTENCES)
    reference = Elmo(options, weights, 1, dropout=0.0).eval()(ids)["elmo_representations"][0]
    save_native(load_bilm(weights, options), tmp_path / "native")
    native = Elmo(None, tmp_path / "native", 1, dropout=0.0).eval()(ids)["elmo_representations"][0]
    custom = Elmo(None, None, 1, dropout=0.0, module=ElmoBiLm(load_bilm(weights, options))).eval()
    torch.testing.assert_close(native, reference)
    torch.testing.assert_close(custom(ids)["elmo_representations"][0], reference)


# -- embed_file -------------------------------------------------------------------------------------


def test_embed_file_layout(tiny_files, tmp_path):
    options, weights = tiny_files
    lines = ["the cat sat", "  a dog  ran ", "the cat sat", "\"quoted\" / slash"]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(lines), encoding="utf8")  # no newline at the end
    out = tmp_path / "out.hdf5"
    embedder = ElmoEmbedder(options, weights)
    embedder.embed_file(str(text), out, batch_size=3)
    with h5py.File(out, "r") as f:
        assert sorted(f.keys()) == ["0", "1", "2", "3", "sentence_to_index"]
        assert f["1"].shape == (3, 3, 32) and f["1"].dtype == numpy.float32
        index = json.loads(f["sentence_to_index"][0])
        assert index == {"the cat sat": "2", "a dog  ran": "1", "\"quoted\" / slash": "3"}
        numpy.testing.assert_allclose(f["0"][...], embedder.embed_sentence(["the", "cat", "sat"]), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.hdf5"]  # no temporary file left


# -- bad input ------------------------------------------------------------------------------------


def test_bad_inputs(tiny_files, tmp_path):
    options, weights = tiny_files
    with pytest.raises(TypeError, match="not a str"):
        batch_to_ids("the cat")
    with pytest.raises(TypeError, match="sentence 1 holds a int"):
        batch_to_ids([["a"], ["b", 3]])
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        Elmo(options, tmp_path / "missing.hdf5", 1)
    with pytest.raises(ConfigurationError, match="has 2 values, but the biLM has 3 layers"):
        Elmo(options, weights, 1, scalar_mix_parameters=[1.0, 2.0])
    with pytest.raises(ConfigurationError, match="not both"):
        Elmo(options, weights, 1, module=torch.nn.Identity())
    elmo = Elmo(options, weights, 1)
    with pytest.raises(ConfigurationError, match=r"shape \(batch, timesteps, 50\).*\(2, 3\)"):
        elmo(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ConfigurationError, match="integer character ids"):
        elmo(torch.zeros(2, 3, 50))
    with pytest.raises(ConfigurationError, match=r"0\.\.261"):
        elmo(torch.full((1, 2, 50), 300))
    with pytest.raises(ConfigurationError, match="downloads nothing"):
        ElmoEmbedder()
    embedder = ElmoEmbedder(options, weights)
    with pytest.raises(TypeError, match="sentence 0 is a str"):
        embedder.embed_batch(["the cat"])
    text = tmp_path / "in.txt"
    text.write_text("a b\n\nc\n \n", encoding="utf8")
    with pytest.raises(ConfigurationError, match=r"in.txt has empty lines at indexes 1, 3"):
        embedder.embed_file(text, tmp_path / "out.hdf5")
    text.write_text("a b\nc\na b\n", encoding="utf8")
    with pytest.raises(ConfigurationError, match="line 2 repeats line 0"):
        embedder.embed_file(text, tmp_path / "out.hdf5", use_sentence_keys=True)
    with pytest.raises(ValueError, match="output_format must be one of"):
        embedder.embed_file(text, tmp_path / "out.hdf5", output_format="first")
    assert not (tmp_path / "out.hdf5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
