"""How much AllenNLP's stateful ELMo moves a sentence's vectors, against the same sentence from zero state
(what AllenNLP gives for its first batch after loading, and what ``spacy_elmo.allennlp`` gives always).

Runs in the reference venv of ``../shared/reference/README.md`` (AllenNLP 2.10.1), nothing of spacy_elmo:

    /tmp/refenv/bin/python benchmarks/allennlp_stateful.py --reference ../shared/reference \\
        --options options.json --weights weights.hdf5 --text sentences.txt [--sentences 512 --batch-size 64]

The sentences (whitespace-tokenised lines) run in order through one AllenNLP biLM in batches of
``--batch-size`` (as ``ElmoEmbedder.embed_sentences`` and ``allennlp elmo`` did), carrying its state,
then again with the state reset before every batch. Per layer, over the sentences after the first batch:
the relative L2 difference ``||warm - cold|| / ||cold||`` per sentence (median, 90th percentile, max) and
the cosine similarity of token vectors (median, 1st percentile). Without ``--options``, a tiny random
biLM from tests/reference_math.py.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import List

import numpy
import torch

ROOT = Path(__file__).resolve().parents[1]


def layers(bilm, batch_to_ids, batch):
    with torch.no_grad():
        out = bilm(batch_to_ids(batch))
    acts = torch.stack(out["activations"])  # [L, B, T + 2, D]
    return [acts[:, i, 1 : 1 + len(s)].numpy() for i, s in enumerate(batch)]


def measure(reference: Path, options: Path, weights: Path, sentences, batch_size: int) -> dict:
    sys.path.insert(0, str(reference))
    import ref_import

    _, ElmoBiLm, batch_to_ids, _ = ref_import.load()
    bilm = ElmoBiLm(str(options), str(weights)).eval()
    batches = [sentences[i : i + batch_size] for i in range(0, len(sentences), batch_size)]
    bilm._elmo_lstm.reset_states()
    warm = [v for batch in batches for v in layers(bilm, batch_to_ids, batch)]
    cold = []
    for batch in batches:
        bilm._elmo_lstm.reset_states()
        cold += layers(bilm, batch_to_ids, batch)
    start = len(batches[0])  # the first batch runs from zero state in both passes
    n_layers = warm[0].shape[0]
    per_layer: List[dict] = []
    result = {"sentences": len(sentences) - start, "batch_size": batch_size, "layers": per_layer}
    for layer in range(n_layers):
        rel = numpy.array([numpy.linalg.norm(w[layer] - c[layer]) / max(numpy.linalg.norm(c[layer]), 1e-12)
                           for w, c in zip(warm[start:], cold[start:])])
        w_tok = numpy.concatenate([w[layer] for w in warm[start:]])
        c_tok = numpy.concatenate([c[layer] for c in cold[start:]])
        cos = (w_tok * c_tok).sum(1) / numpy.maximum(numpy.linalg.norm(w_tok, axis=1) * numpy.linalg.norm(c_tok, axis=1), 1e-12)
        per_layer.append({
            "relative_l2_median": float(numpy.median(rel)), "relative_l2_p90": float(numpy.percentile(rel, 90)),
            "relative_l2_max": float(rel.max()), "cosine_median": float(numpy.median(cos)),
            "cosine_p1": float(numpy.percentile(cos, 1)), "max_abs": float(numpy.abs(w_tok - c_tok).max()),
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the folder holding ref_import.py")
    parser.add_argument("--options", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [line.split() for line in args.text.read_text(encoding="utf8").splitlines() if line.strip()]
    lines = lines[: args.sentences]
    with tempfile.TemporaryDirectory() as tmp:
        options, weights = args.options, args.weights
        if options is None:
            sys.path.insert(0, str(ROOT / "tests"))
            import reference_math as R

            opts = R.options_dict(32, 16, 1, R.FILTERS_TINY, 4)
            options, weights = R.write_published(Path(tmp), opts, R.random_published_arrays(opts, seed=3))
        print(json.dumps(measure(args.reference, options, weights, lines, args.batch_size), indent=1))


if __name__ == "__main__":
    main()
