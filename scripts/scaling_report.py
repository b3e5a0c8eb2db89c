"""Write reports/scaling.md (for each pretraining budget: minutes, steps, tokens seen, held-out perplexity, and
the WNUT-17 test F of NER over that biLM), scaling.json (the same figures) and scaling.png (perplexity and F
against tokens seen, log x)."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import typer  # noqa: E402

# scripts/ is on sys.path
from runs import budget_name, parse_list, read_json, read_pretraining, seed_name  # noqa: E402


def main(
    minutes: str = typer.Option(..., help="comma-separated time budgets in minutes, such as 6,18,54"),
    bilms: Path = typer.Option(Path("training/scaling"), help="the folder of the bilm_<M>min biLMs"),
    metrics: Path = typer.Option(Path("metrics/scaling_ner"), help="the folder of the bilm_<M>min NER metrics"),
    seed: int = typer.Option(0, help="the NER training's seed"),
    output: Path = typer.Option(Path("reports")),
) -> None:
    rows = []
    for budget in parse_list(minutes, float, "--minutes"):
        name = budget_name(budget)
        ner = read_json(metrics / name / f"{seed_name(seed)}.json", f"evaluate NER over the {name} biLM first")
        rows.append({"budget_minutes": budget, **read_pretraining(bilms / name / "summary.json"), "ner_f": ner["f"]})
    lines = ["# What a longer pretraining buys", "",
             f"The biLM pretrained for each time budget (as the `pretrain` command does), then WNUT-17 NER with "
             f"ELMo over it (seed {seed}).", "",
             "| pretraining minutes | steps | tokens seen | held-out perplexity | WNUT-17 test F |",
             "|---|---|---|---|---|"]
    for r in rows:
        ppl = "–" if r["dev_ppl"] is None else f"{r['dev_ppl']:.1f}"
        cells = [f"{r['budget_minutes']:g}", f"{r['steps']:,}", f"{r['tokens_seen']:,}", ppl, f"{100 * r['ner_f']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    output.mkdir(parents=True, exist_ok=True)
    (output / "scaling.md").write_text("\n".join(lines) + "\n")
    (output / "scaling.json").write_text(json.dumps(rows, indent=2))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label, scale in ((axes[0], "dev_ppl", "held-out perplexity", 1.0),
                                  (axes[1], "ner_f", "WNUT-17 test F", 100.0)):
        points = [(r["tokens_seen"], scale * r[key], r["budget_minutes"]) for r in rows if r[key] is not None]
        ax.plot([t for t, _, _ in points], [v for _, v, _ in points], marker="o")
        for t, v, m in points:
            ax.annotate(f"{m:g} min", (t, v), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short log axis overlap
        ax.set_xlabel("pretraining tokens seen")
        ax.set_title(label)
    axes[0].set_yscale("log")  # perplexity against tokens: a power law is a line
    axes[1].set_ylim(0, 5 * math.ceil(max(100 * r["ner_f"] for r in rows) / 5 + 1))  # from 0: no zoom on noise
    fig.tight_layout()
    fig.savefig(output / "scaling.png", dpi=100)
    print((output / "scaling.md").read_text())


if __name__ == "__main__":
    typer.run(main)
