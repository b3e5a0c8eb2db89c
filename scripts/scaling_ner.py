"""Train and evaluate WNUT-17 NER over each time budget's biLM (from scripts/pretrain_scaling.py):
BILMS/bilm_<M>min -> OUTPUT/bilm_<M>min/seed<N> -> METRICS/bilm_<M>min/seed<N>.json.

    python scripts/scaling_ner.py configs/ner_elmo.cfg corpus/wnut17/test.spacy --minutes 6,18,54 \\
        --bilms training/scaling --output training/scaling_ner --metrics metrics/scaling_ner --seeds 0 \\
        --paths.train train.spacy --paths.dev dev.spacy --training.max_steps 3000

Other arguments go to `spacy train` as they are (see train_seeds.py)."""
from pathlib import Path

import typer

from evaluate_seeds import evaluate_seeds  # scripts/ is on sys.path
from runs import budget_name, parse_list
from train_seeds import train_seeds

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="the NER config with an ELMo listener"),
    test: Path = typer.Argument(..., exists=True, dir_okay=False, help="the .spacy test set"),
    minutes: str = typer.Option(..., help="comma-separated time budgets in minutes, such as 6,18,54"),
    bilms: Path = typer.Option(..., help="the folder of the bilm_<M>min biLMs"),
    output: Path = typer.Option(..., help="one bilm_<M>min run folder per budget goes here"),
    metrics: Path = typer.Option(..., help="one bilm_<M>min metrics folder per budget goes here"),
    seeds: str = typer.Option("0", help="comma-separated seeds"),
) -> None:
    budgets = [budget_name(m) for m in parse_list(minutes, float, "--minutes")]
    seed_list = parse_list(seeds, int, "--seeds")
    for name in budgets:
        if not (bilms / name).is_dir():
            raise SystemExit(f"{bilms / name}: missing (pretrain the {name} biLM first)")
    for name in budgets:
        train_seeds(config, output / name, seed_list, [*ctx.args, "--paths.elmo_weights", str(bilms / name)])
        evaluate_seeds(output / name, test, metrics / name, seed_list)


if __name__ == "__main__":
    app()
