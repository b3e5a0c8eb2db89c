"""Evaluate each seed's model-best of a run on a .spacy test set, as scripts/evaluate.py does:
RUN/seed<N>/model-best -> METRICS/seed<N>.json.

    python scripts/evaluate_seeds.py training/ner_elmo corpus/wnut17/test.spacy metrics/ner_elmo --seeds 0,1,2
"""
from pathlib import Path
from typing import Sequence

import typer

from evaluate import evaluate, write_metrics  # scripts/ is on sys.path
from runs import parse_list, seed_name


def evaluate_seeds(run: Path, data: Path, metrics: Path, seeds: Sequence[int]) -> None:
    for seed in seeds:
        model = run / seed_name(seed) / "model-best"
        if not model.is_dir():
            raise SystemExit(f"{model}: missing (train seed {seed} of {run} first)")
        write_metrics(evaluate(model, data), metrics / f"{seed_name(seed)}.json")


def main(
    run: Path = typer.Argument(..., help="a run's folder, with one seed<N> folder per seed"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="the .spacy test set"),
    metrics: Path = typer.Argument(..., help="the run's metrics folder: one seed<N>.json per seed"),
    seeds: str = typer.Option("0", help="comma-separated seeds, such as 0,1,2"),
) -> None:
    evaluate_seeds(run, data, metrics, parse_list(seeds, int, "--seeds"))


if __name__ == "__main__":
    typer.run(main)
