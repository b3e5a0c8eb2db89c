"""``spacy_elmo.allennlp.Elmo`` against AllenNLP 2.10.1's ``Elmo`` on the same weight file and batches:
tokens/s of ``forward`` (inference, one output representation) and the largest difference of the outputs.

    .venv/bin/python benchmarks/bench_allennlp_api.py --size small --tokens 4000 --threads 2

Runs AllenNLP in its own venv (``--refenv``, see ``../shared/reference/README.md``) as a subprocess of this
script (``--reference-run``), on the same sentences, batches of ``--batch`` in corpus order, states reset
before every batch (so both compute the same thing). Random weights of the published shapes.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, best_time, corpus_sentences, load_average, weight_files  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference"


def run(elmo, batch_to_ids, sentences, batch_size, reset=None):
    outputs = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            if reset is not None:
                reset()
            batch = sentences[start : start + batch_size]
            rep = elmo(batch_to_ids(batch))["elmo_representations"][0]
            outputs += [rep[i, : len(s)].numpy() for i, s in enumerate(batch)]
    return outputs


def reference_run(args) -> None:
    sys.path.insert(0, str(REFERENCE))
    import ref_import

    Elmo, _, batch_to_ids, _ = ref_import.load()
    torch.set_num_threads(args.threads)
    sentences = json.loads(Path(args.sentences).read_text())
    elmo = Elmo(str(args.options), str(args.weights), 1, dropout=0.0).eval()
    reset = elmo._elmo_lstm._elmo_lstm.reset_states
    seconds = best_time(lambda: run(elmo, batch_to_ids, sentences, args.batch, reset), args.repeats)
    outputs = run(elmo, batch_to_ids, sentences, args.batch, reset)
    numpy.save(args.out, numpy.concatenate(outputs))
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "original"])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--refenv", default="/tmp/refenv/bin/python")
    parser.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--sentences", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_run:
        return reference_run(args)

    from spacy_elmo.allennlp import Elmo, batch_to_ids

    torch.set_num_threads(args.threads)
    options, weights = weight_files(args.size)
    sentences = corpus_sentences(args.tokens)
    n_tokens = sum(len(s) for s in sentences)
    elmo = Elmo(options, weights, 1, dropout=0.0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sentences.json"
        path.write_text(json.dumps(sentences))
        started = time.strftime("%H:%M UTC", time.gmtime())
        ours = best_time(lambda: run(elmo, batch_to_ids, sentences, args.batch), args.repeats)
        done = subprocess.run(
            [args.refenv, __file__, "--reference-run", "--options", str(options), "--weights", str(weights),
             "--sentences", str(path), "--out", str(Path(tmp) / "ref.npy"), "--threads", str(args.threads),
             "--batch", str(args.batch), "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True)
        theirs = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        reference = numpy.load(Path(tmp) / "ref.npy")
    diff = float(numpy.abs(numpy.concatenate(run(elmo, batch_to_ids, sentences, args.batch)) - reference).max())
    print(json.dumps({
        "size": args.size, "tokens": n_tokens, "sentences": len(sentences), "batch": args.batch,
        "threads": args.threads, "started": started, "load_average": load_average(),
        "spacy_elmo_tok_s": round(n_tokens / ours), "allennlp_tok_s": round(n_tokens / theirs),
        "speed_ratio": round(theirs / ours, 2), "max_abs_diff": diff,
    }))


if __name__ == "__main__":
    main()
