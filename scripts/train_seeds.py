"""`spacy train` once per seed (spaCy's `system.seed`), each into OUTPUT/seed<N> (model-best, log.jsonl).

    python scripts/train_seeds.py configs/ner_elmo.cfg training/ner_elmo --seeds 0,1,2 \\
        --paths.train train.spacy --paths.dev dev.spacy --paths.elmo_weights training/bilm --gpu-id -1

With --weights (and --options for an hdf5 file) each seed trains through scripts/train_with_bilm.py, which
takes the listener width from the biLM's options. Other arguments go to the trainer as they are. A seed whose
folder records a finished run of the same command over the same files is skipped (see runs.py)."""
import os
from pathlib import Path
from typing import List, Optional, Sequence

import typer

from runs import parse_list, run_once, seed_name  # scripts/ is on sys.path

app = typer.Typer(add_completion=False)


def train_seeds(config: Path, output: Path, seeds: Sequence[int], args: List[str],
                weights: Optional[Path] = None, options: Optional[Path] = None) -> None:
    given = [str(config), *args]
    if weights is not None:
        given += ["--weights", str(weights)] + (["--options", str(options)] if options is not None else [])
    with_bilm = os.path.relpath(Path(__file__).with_name("train_with_bilm.py"))  # relative: the stamp survives a move
    for seed in seeds:
        folder = output / seed_name(seed)
        if weights is None:
            trainer = ["-m", "spacy", "train", str(config), "--output", str(folder), *args]
        else:
            trainer = [with_bilm, str(config), str(folder), *given[1:]]
        per_seed = ["--system.seed", str(seed), "--training.logger.path", str(folder / "log.jsonl")]
        run_once(trainer + per_seed, folder, given)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="a spacy train config"),
    output: Path = typer.Argument(..., help="the run's folder: one seed<N> folder per seed"),
    seeds: str = typer.Option("0", help="comma-separated seeds, such as 0,1,2"),
    weights: Optional[Path] = typer.Option(None, exists=True, help="train over this biLM with train_with_bilm.py"),
    options: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="the options.json of --weights"),
) -> None:
    train_seeds(config, output, parse_list(seeds, int, "--seeds"), list(ctx.args), weights, options)


if __name__ == "__main__":
    app()
