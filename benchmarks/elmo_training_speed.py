"""Training speed (words/s) of a shipped NER / textcat config, epoch by epoch, with and without the
per-Doc layer cache of the frozen biLM.

    python benchmarks/elmo_training_speed.py configs/ner_elmo.cfg /tmp/wnut/train.spacy --epochs 3
    python benchmarks/elmo_training_speed.py configs/ner_elmo.cfg /tmp/wnut/train.spacy --doc-cache-size 0
    python benchmarks/elmo_training_speed.py configs/ner_baseline.cfg /tmp/wnut/train.spacy
    (--limit N: the first N training and dev Docs only)

The biLM is random ``small`` weights (1024 cells, 128 projection) in the published hdf5 layout. Each epoch
runs ``nlp.update`` over the config's batches exactly as ``spacy train`` does (same batcher, optimizer and
dropout, shuffled corpus); evaluation is timed separately (twice: the second one is served by the cache).
"""
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict

import typer
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry, resolve_dot_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SIZES, weight_files  # noqa: E402


def main(
    config: Path,
    train: Path,
    dev: Path = typer.Option(None, help="dev .spacy (default: the train file)"),
    epochs: int = typer.Option(3),
    size: str = typer.Option("small"),
    doc_cache_size: int = typer.Option(None, help="override [components.elmo.model] doc_cache_size"),
    limit: int = typer.Option(0, help="use only the first LIMIT training and dev Docs (0: all)"),
) -> None:
    overrides: Dict[str, Any] = {"paths.train": str(train), "paths.dev": str(dev or train)}
    cfg = load_config(config, overrides=overrides)
    if "elmo" in cfg["nlp"]["pipeline"]:
        options, weights = weight_files(size)
        task = next(p for p in cfg["nlp"]["pipeline"] if p != "elmo")
        overrides.update({
            "paths.elmo_weights": str(weights), "paths.elmo_options": str(options),
            f"components.{task}.model.tok2vec.elmo.width": 2 * SIZES[size]["lstm"]["projection_dim"],
        })
        if doc_cache_size is not None:
            overrides["components.elmo.model.doc_cache_size"] = doc_cache_size
        cfg = load_config(config, overrides=overrides)
    start = time.perf_counter()
    nlp = init_nlp(cfg)
    print(f"{config.name}: pipeline {nlp.pipe_names}, initialized in {time.perf_counter() - start:.1f}s, "
          f"torch threads {__import__('torch').get_num_threads()}")
    T = registry.resolve(nlp.config.interpolate()["training"])
    train_corpus, dev_corpus = resolve_dot_names(nlp.config.interpolate(), [T["train_corpus"], T["dev_corpus"]])
    optimizer, batcher = T["optimizer"], T["batcher"]
    examples = list(train_corpus(nlp))[: limit or None]
    random.seed(0)
    for epoch in range(1, epochs + 1):
        random.shuffle(examples)
        words, start = 0, time.perf_counter()
        for batch in batcher(examples):
            nlp.update(batch, drop=T["dropout"], sgd=optimizer)
            words += sum(len(eg.predicted) for eg in batch)
        seconds = time.perf_counter() - start
        print(f"epoch {epoch}: {words} words in {seconds:.1f}s = {words / seconds:,.0f} words/s (training)")
    dev_examples = list(dev_corpus(nlp))[: limit or None]
    dev_words = sum(len(eg.reference) for eg in dev_examples)
    for run in (1, 2):
        start = time.perf_counter()
        scores = nlp.evaluate(dev_examples)
        seconds = time.perf_counter() - start
        print(f"evaluation {run}: {dev_words / seconds:,.0f} words/s, score {scores.get('ents_f', scores.get('cats_score')):.4f}")


if __name__ == "__main__":
    typer.run(main)
