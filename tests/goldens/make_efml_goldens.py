"""Goldens of ELMoForManyLangs' own code, for tests/test_efml.py and benchmarks/efml_parity.py.

Runs in a side venv that has the reference package (never in the project's venv; nothing of it is
copied into the project):

    python3 -m venv /tmp/efmlref
    /tmp/efmlref/bin/pip install torch==2.13.0 numpy h5py
    /tmp/efmlref/bin/pip install --no-deps elmoformanylangs
    /tmp/efmlref/bin/python tests/goldens/make_efml_goldens.py            # the small goldens, committed
    /tmp/efmlref/bin/python tests/goldens/make_efml_goldens.py --released /tmp/efml_released  # released size

For each configuration it writes a model folder in the package's released layout (``config.json`` whose
``config_path`` is an absolute path from another machine, ``char.dic`` and ``word.dic`` in the order its
trainer writes them, ``token_embedder.pkl`` and ``encoder.pkl`` saved in torch's legacy format, as the
2018 releases were), with random weights from a fixed seed, runs the package's ``Embedder`` on one
sentence per call (its encoder is stateful: the state is reset before each call, so every sentence
starts from zero, as ours does), and writes every layer to ``outputs.npz``.

The one shim: ``overrides`` (a decorator the package imports; its current release rejects the
package's signatures), served as the identity from a temporary folder put first on ``sys.path``.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy
import torch

SENTENCES = [
    ["Ærøskøbing", "liegt", "südlich", "von", "Zürich", "—", "façade", "naïve", "!"],
    ["Съешь", "же", "ещё", "этих", "мягких", "французских", "булок", "."],
    ["我们", "喜欢", "自然语言", "处理", "。"],
    ["اللغة", "العربية", "جميلة", "جدا"],
    ["a" * 30 + "ü" * 30, "<bos>", "x\u3000y", "", "Ωmega", "?"],  # truncation, a literal mark, U+3000, empty
]
SMALL = {
    "encoder": {"name": "elmo", "projection_dim": 8, "cell_clip": 3, "proj_clip": 3, "dim": 16, "n_layers": 2},
    "token_embedder": {"name": "cnn", "activation": "relu", "filters": [[1, 4], [2, 4], [3, 8]], "n_highway": 2,
                       "word_dim": 6, "char_dim": 5, "max_characters_per_token": 50},
    "dropout": 0.1,
}
SMALL_NO_WORDS = json.loads(json.dumps(SMALL))
SMALL_NO_WORDS["token_embedder"].update(word_dim=0, activation="tanh", max_characters_per_token=12)
SMALL_NO_WORDS["encoder"].update(cell_clip=0.5, proj_clip=0.25, n_layers=3)
HERE = Path(__file__).resolve().parent


def _shim_overrides() -> None:
    folder = tempfile.mkdtemp()
    Path(folder, "overrides.py").write_text("def overrides(f):\n    return f\n")
    sys.path.insert(0, folder)


def _vocabularies(sentences, drop_chars="ΩЪ", drop_words=("Zürich", "жe")):
    """As the package's trainer builds them: characters in order of appearance, then the specials;
    words: the specials first, then the words. Some characters and words are left out (unknown)."""
    chars = {}
    for sentence in sentences:
        for word in sentence:
            for ch in word:
                if ch not in drop_chars and ch not in chars:
                    chars[ch] = len(chars)
    for special in ["<bos>", "<eos>", "<oov>", "<pad>", "<bow>", "<eow>"]:
        chars.setdefault(special, len(chars))
    words = {}
    for special in ["<oov>", "<bos>", "<eos>", "<pad>"]:
        words[special] = len(words)
    for sentence in sentences:
        for word in sentence:
            if word not in drop_words and word not in words:
                words[word] = len(words)
    return chars, words


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            fan_in = p.shape[1] * (p.shape[2] if p.dim() > 2 else 1) if p.dim() > 1 else 4
            p.copy_(torch.randn(p.shape, generator=generator) * (1.5 / fan_in**0.5))


def write_model(folder: Path, arch: dict, seed: int, extra_words: int = 0) -> None:
    from elmoformanylangs.frontend import Model
    from elmoformanylangs.modules.embedding_layer import EmbeddingLayer

    folder.mkdir(parents=True, exist_ok=True)
    chars, words = _vocabularies(SENTENCES)
    for i in range(extra_words):  # a released-size word table
        words[f"w{i}"] = len(words)
    arch_name = "cnn_50_100_512_4096_sample.json" if arch["encoder"]["dim"] == 4096 else "arch_small.json"
    if arch_name == "arch_small.json":
        (folder / arch_name).write_text(json.dumps(arch), encoding="utf-8")
    # as released: an absolute path from the authors' machine
    (folder / "config.json").write_text(json.dumps({"config_path": f"/users4/conll18st/elmo/src/configs/{arch_name}",
                                                    "word_embedding": None, "max_sent_len": 20}), encoding="utf-8")
    with open(folder / "char.dic", "w", encoding="utf-8") as out:
        for ch, i in chars.items():
            print(f"{ch}\t{i}", file=out)
    with open(folder / "word.dic", "w", encoding="utf-8") as out:
        for w, i in words.items():
            print(f"{w}\t{i}", file=out)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    emb = arch["token_embedder"]
    char_layer = EmbeddingLayer(emb["char_dim"], chars, fix_emb=False)
    word_layer = EmbeddingLayer(emb["word_dim"], words, fix_emb=False) if emb["word_dim"] > 0 else None
    model = Model(arch, word_layer, char_layer, use_cuda=False)
    _randomise(model, generator)
    for module, name in ((model.token_embedder, "token_embedder.pkl"), (model.encoder, "encoder.pkl")):
        torch.save(module.state_dict(), folder / name, _use_new_zipfile_serialization=False)


def reference_outputs(folder: Path, arch: dict) -> dict:
    import elmoformanylangs
    from elmoformanylangs import Embedder

    embedder = Embedder(str(folder), batch_size=1)
    out = {}
    for index, sentence in enumerate(SENTENCES):
        embedder.model.encoder.reset_states()  # stateful: start from zero, as ours always does
        with torch.no_grad():
            layers = embedder.sents2elmo([sentence], output_layer=-2)[0]
        out[f"sentence_{index}"] = numpy.asarray(layers, dtype=numpy.float32)
    assert elmoformanylangs.__file__
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--released", type=Path, help="write the released-size model and outputs here instead")
    args = parser.parse_args()
    _shim_overrides()
    import logging

    logging.getLogger("elmoformanylangs").setLevel(logging.ERROR)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    if args.released:
        from elmoformanylangs import elmo

        arch = json.loads((Path(elmo.__file__).parent / "configs" / "cnn_50_100_512_4096_sample.json").read_text())
        jobs = [(args.released, arch, 7, 20_000)]
    else:
        jobs = [(HERE / "efml_small", SMALL, 1, 0), (HERE / "efml_small_nowords", SMALL_NO_WORDS, 2, 0)]
    for folder, arch, seed, extra in jobs:
        write_model(folder, arch, seed, extra)
        numpy.savez(folder / "outputs.npz", **reference_outputs(folder, arch))
        (folder / "sentences.json").write_text(json.dumps(SENTENCES, ensure_ascii=False, indent=0), encoding="utf-8")
        print("wrote", folder)


if __name__ == "__main__":
    main()
