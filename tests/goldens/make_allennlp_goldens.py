"""Write the AllenNLP parity goldens of ``spacy_elmo.allennlp`` (tests/test_allennlp_parity.py).

Runs in the reference venv of ``../shared/reference/README.md`` (AllenNLP 2.10.1, ``--no-deps``), never
in the project's: it imports AllenNLP through that folder's ``ref_import.py`` and nothing of spacy_elmo.
``ElmoEmbedder`` lived in AllenNLP 0.9's ``allennlp/commands/elmo.py`` (removed later); pass that file
(``git show v0.9.0:allennlp/commands/elmo.py > elmo_090.py`` in a clone of allenai/allennlp) as
``--embedder-source``: it runs on 2.10.1's ``_ElmoBiLm`` and ``batch_to_ids``, with a pass-through progress bar.
No AllenNLP code is stored in this project; only its outputs are.

    /tmp/refenv/bin/python tests/goldens/make_allennlp_goldens.py \\
        --reference ../shared/reference --embedder-source /tmp/elmo_090.py --out tests/goldens

Writes ``allennlp_elmo.npz`` (the tiny biLM's weights, inputs and outputs), ``allennlp_embed_file_*.hdf5``
(embed_file's output files) and ``allennlp_embedder_empty.json`` (what it gives for empty sentences).
"""
import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import reference_math as R  # noqa: E402  (numpy only)

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["Ünïcödé", "naïve", "café", "日本語", "🙂"],
    ["a" * 60, "<S>", "</S>", "x"],
    ["short"],
]
# odd tokens for batch_to_ids: empty sentence, marks, bytes cut at 48, multi-byte cut mid-character
ID_SENTENCES = [
    [],
    ["<S>", "</S>", "<s>", "", " ", "\t"],
    ["é" * 30, "a" * 47 + "é", "🙂" * 13, "\x00", "\u200b"],
    ["the"],
]
MIXES = {"scalar_mix_0": ([0.3, -0.5, 1.1], 1.7), "scalar_mix_1": ([-1.0, 0.2, 0.4], 0.6)}
VOCAB = ["@@PADDING@@", "the", "cat", "sat", "on", "mat", ".", "dog", "ran"]
VOCAB_BATCH = [[1, 2, 3, 4, 1, 5, 6], [1, 7, 8, 4, 1, 5, 6]]  # same length: no padding
VOCAB_PADDED = [[1, 2, 3, 4, 1, 5, 6], [1, 7, 8, 0, 0, 0, 0]]
EMBED_LINES = ["The cat sat on the mat .", "a dog", "the cat", "café 🙂 日本語", "The cat sat on the mat ."]


def load_allennlp(reference: Path, embedder_source: Path):
    sys.path.insert(0, str(reference))
    import ref_import

    Elmo, ElmoBiLm, batch_to_ids, _ = ref_import.load()
    # 0.9's commands/elmo.py, on 2.10.1's modules: shims for what it imports that 2.10.1 lacks or that
    # pulls in unrelated packages (argparse subcommands, tqdm, logging setup)
    tqdm_module = types.ModuleType("allennlp.common.tqdm")
    tqdm_module.Tqdm = type("Tqdm", (), {"tqdm": staticmethod(lambda iterable, **kwargs: iterable)})
    subcommand = types.ModuleType("allennlp.commands.subcommand")
    subcommand.Subcommand = object
    commands = types.ModuleType("allennlp.commands")
    commands.__path__ = []
    sys.modules.update({"allennlp.common.tqdm": tqdm_module, "allennlp.commands": commands,
                        "allennlp.commands.subcommand": subcommand})
    import allennlp.common.util as util

    if not hasattr(util, "prepare_global_logging"):
        util.prepare_global_logging = lambda *args, **kwargs: None
    # vocab_to_cache imports token_embedders.Embedding; that package's __init__ imports transformers
    import allennlp.modules as modules

    embedders = types.ModuleType("allennlp.modules.token_embedders")
    embedders.__path__ = [str(Path(list(modules.__path__)[0]) / "token_embedders")]
    sys.modules["allennlp.modules.token_embedders"] = embedders
    from allennlp.modules.token_embedders.embedding import Embedding

    embedders.Embedding = Embedding
    module = types.ModuleType("allennlp_090_commands_elmo")
    exec(compile(embedder_source.read_text(), str(embedder_source), "exec"), module.__dict__)
    return Elmo, batch_to_ids, module.ElmoEmbedder


def reset(elmo) -> None:
    elmo._elmo_lstm._elmo_lstm.reset_states()


def set_mixes(elmo) -> None:
    with torch.no_grad():
        for name, (weights, gamma) in MIXES.items():
            mix = getattr(elmo, name)
            for parameter, value in zip(mix.scalar_parameters, weights):
                parameter.fill_(value)
            mix.gamma.fill_(gamma)


def elmo_cases(Elmo, batch_to_ids, options: Path, weights: Path, out: dict) -> None:
    ids = batch_to_ids(SENTENCES)
    out["inputs"] = ids.numpy()
    cases = {
        "plain": {},
        "layer_norm": {"do_layer_norm": True},
        "boundaries": {"keep_sentence_boundaries": True},
        "boundaries_layer_norm": {"keep_sentence_boundaries": True, "do_layer_norm": True},
        "fixed_mix": {"scalar_mix_parameters": [-9e10, 1.0, -9e10]},
        "fixed_mix_layer_norm": {"scalar_mix_parameters": [0.5, -1.0, 2.0], "do_layer_norm": True},
    }
    for name, kwargs in cases.items():
        elmo = Elmo(str(options), str(weights), 2, dropout=0.0, **kwargs).eval()
        if "scalar_mix_parameters" not in kwargs:
            set_mixes(elmo)
        reset(elmo)
        with torch.no_grad():
            result = elmo(ids)
        for k, rep in enumerate(result["elmo_representations"]):
            out[f"{name}/rep{k}"] = rep.numpy()
        out[f"{name}/mask"] = result["mask"].numpy()
    # vocab_to_cache: word ids (and the character ids AllenNLP needs beside them)
    elmo = Elmo(str(options), str(weights), 1, dropout=0.0, vocab_to_cache=VOCAB).eval()
    for key, batch in (("vocab", VOCAB_BATCH), ("vocab_padded", VOCAB_PADDED)):
        words = torch.tensor(batch)
        chars = batch_to_ids([[VOCAB[i] for i in row if i > 0] for row in batch])
        reset(elmo)
        with torch.no_grad():
            result = elmo(chars, words)
        out[f"{key}/words"] = words.numpy()
        out[f"{key}/rep0"] = result["elmo_representations"][0].numpy()
        out[f"{key}/mask"] = result["mask"].numpy()
    # a fine-tuned model's state dict: every biLM parameter moved, so that each one's reading is checked
    elmo = Elmo(str(options), str(weights), 1, requires_grad=True, dropout=0.0).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in elmo.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    reset(elmo)
    with torch.no_grad():
        out["finetuned/rep0"] = elmo(ids)["elmo_representations"][0].numpy()
    out.update({f"finetuned_state/{k}": v.numpy() for k, v in elmo.state_dict().items()})
    # more than 3 dimensions: (2, 2, timesteps, 50)
    elmo = Elmo(str(options), str(weights), 1, dropout=0.0).eval()
    four = batch_to_ids(SENTENCES).view(2, 2, -1, 50)
    reset(elmo)
    with torch.no_grad():
        result = elmo(four)
    out["four_dims/rep0"] = result["elmo_representations"][0].numpy()
    out["four_dims/mask"] = result["mask"].numpy()


def embed_file_cases(ElmoEmbedder, options: Path, weights: Path, directory: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "sentences.txt"
        text.write_text("\n".join(EMBED_LINES) + "\n", encoding="utf8")
        embedder = ElmoEmbedder(str(options), str(weights))
        # one batch holding every line: AllenNLP's first batch runs from zero state
        for name, fmt, kwargs in (("all", "all", {}), ("top", "top", {"forget_sentences": True}),
                                  ("average", "average", {})):
            embedder.elmo_bilm._elmo_lstm.reset_states()
            with torch.no_grad():
                embedder.embed_file(open(text, encoding="utf8"), str(directory / f"allennlp_embed_file_{name}.hdf5"),
                                    fmt, batch_size=len(EMBED_LINES), **kwargs)
        unique = Path(tmp) / "unique.txt"
        unique.write_text("\n".join(EMBED_LINES[:4]) + "\n", encoding="utf8")
        embedder.elmo_bilm._elmo_lstm.reset_states()
        with torch.no_grad():
            embedder.embed_file(open(unique, encoding="utf8"), str(directory / "allennlp_embed_file_keys.hdf5"),
                                "all", batch_size=len(EMBED_LINES), use_sentence_keys=True)
        empty = embedder.embed_batch([[]])[0]
        mixed = embedder.embed_batch([["a"], []])
    with open(directory / "allennlp_embedder_empty.json", "w") as f:
        json.dump({"alone": [list(empty.shape), str(empty.dtype)],
                   "in_batch": [[list(a.shape), str(a.dtype)] for a in mixed]}, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the folder holding ref_import.py")
    parser.add_argument("--embedder-source", type=Path, required=True, help="AllenNLP 0.9.0's allennlp/commands/elmo.py")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    torch.manual_seed(0)
    Elmo, batch_to_ids, ElmoEmbedder = load_allennlp(args.reference, args.embedder_source)
    opts = R.options_dict(32, 16, 1, R.FILTERS_TINY, 4)
    arrays = R.random_published_arrays(opts, seed=3)
    out = {"options": numpy.frombuffer(json.dumps(opts).encode(), dtype=numpy.uint8)}
    out.update({f"weights/{k}": v for k, v in arrays.items()})
    for i, sentence in enumerate(ID_SENTENCES):
        out[f"ids/sentence{i}"] = numpy.array(json.dumps(sentence))
    out["ids/batch"] = batch_to_ids(ID_SENTENCES).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        options, weights = R.write_published(Path(tmp), opts, arrays)
        elmo_cases(Elmo, batch_to_ids, options, weights, out)
        embed_file_cases(ElmoEmbedder, options, weights, args.out)
    numpy.savez_compressed(args.out / "allennlp_elmo.npz", **out)


if __name__ == "__main__":
    main()
