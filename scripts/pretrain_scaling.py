"""Pretrain once per time budget: the arguments after `--` are the pretraining's python command line (as the
project's `pretrain` command runs it) without --max-minutes and --output, which this adds per budget.

    python scripts/pretrain_scaling.py --minutes 6,18,54 --output training/scaling -- \\
        -m spacy_elmo pretrain corpus/raw/mixed.txt --options configs/bilm_cpu.json ...

Each budget M pretrains into OUTPUT/bilm_<M>min; one that finished with the same command line over the same
files is skipped, one that stopped starts again (see runs.py)."""
from pathlib import Path
from typing import List

import typer

from runs import budget_name, parse_list, run_once  # scripts/ is on sys.path


def main(
    command: List[str] = typer.Argument(..., help="the pretraining's python arguments, after --"),
    minutes: str = typer.Option(..., help="comma-separated time budgets in minutes, such as 6,18,54"),
    output: Path = typer.Option(..., help="one bilm_<M>min folder per budget goes here"),
) -> None:
    budgets = parse_list(minutes, float, "--minutes")
    if min(budgets) <= 0:
        raise typer.BadParameter(f"--minutes {minutes!r}: every budget must be positive")
    for budget in budgets:
        folder = output / budget_name(budget)
        run_once([*command, "--max-minutes", f"{budget:g}", "--output", str(folder)], folder, command)


if __name__ == "__main__":
    typer.run(main)
