"""Parity of our ELMoForManyLangs loader with the package's own outputs at the released size.

First, in the side venv (see tests/goldens/make_efml_goldens.py):
    /tmp/efmlref/bin/python tests/goldens/make_efml_goldens.py --released /tmp/efml_released
then here:
    .venv/bin/python benchmarks/efml_parity.py /tmp/efml_released
Prints the largest absolute difference per layer over all sentences, and the largest value.
"""
import json
import sys
from pathlib import Path

import numpy

from spacy_elmo.bilm import Embedder
from spacy_elmo.io import load_with_family


def main(folder: Path) -> None:
    bilm, family = load_with_family(folder)
    sentences = json.loads((folder / "sentences.json").read_text(encoding="utf-8"))
    with numpy.load(folder / "outputs.npz", allow_pickle=False) as data:
        want = [data[f"sentence_{i}"] for i in range(len(sentences))]
    o = bilm.options
    print(f"family {family}; dim {o.lstm.dim}, projection {o.lstm.projection_dim}, {o.char_cnn.n_highway} highways, "
          f"word_dim {bilm.tokens.word_dim}, {sum(p.numel() for p in bilm.parameters()):,} parameters")
    got = Embedder(bilm, max_batch_tokens=10_000).embed(sentences)  # all sentences in one batch
    worst = numpy.zeros(o.n_output_layers)
    for mine, theirs in zip(got, want):
        assert mine.shape == theirs.shape, (mine.shape, theirs.shape)
        worst = numpy.maximum(worst, numpy.abs(mine - theirs).max(axis=(1, 2)))
    print("max |ours - package| per layer:", " ".join(f"{w:.2e}" for w in worst))
    print("max |value|:", f"{max(float(numpy.abs(t).max()) for t in want):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
