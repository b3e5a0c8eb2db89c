"""Write the project report: markdown tables of the test scores and a PNG of dev score by step and of
each task's learned ELMo layer weights."""
import json
from pathlib import Path
from typing import List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import typer  # noqa: E402

from show_layer_weights import learned_mixes  # noqa: E402  (scripts/ is on sys.path)

RUNS = {"ner": ("ner_baseline", "ner_elmo"), "textcat": ("textcat_baseline", "textcat_elmo")}


def read_log(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def train_stats(log: List[dict]) -> Tuple[float, float]:
    """(seconds, words per second) of a training run, from its last log line."""
    if not log:
        return 0.0, 0.0
    last = log[-1]
    return float(last["seconds"]), last["words"] / max(last["seconds"], 1)


def main(
    metrics: Path = typer.Option(Path("metrics")),
    training: Path = typer.Option(Path("training")),
    baselines: Optional[Path] = typer.Option(None, help="training folder of the baselines (default: --training)"),
    bilm: str = typer.Option("", help="which biLM the ELMo runs used, for the title"),
    output: Path = typer.Option(Path("reports")),
) -> None:
    m = {run: json.loads((metrics / f"{run}.json").read_text()) for pair in RUNS.values() for run in pair}
    folders = {run: (baselines or training) if run.endswith("_baseline") else training for run in m}
    logs = {run: read_log(folders[run] / run / "log.jsonl") for run in m}
    mixes = {run: learned_mixes(training / run / "model-best") for run in ("ner_elmo", "textcat_elmo")}
    lines = ["# spacy-elmo project report" + (f": {bilm}" if bilm else ""), ""]
    lines += ["## WNUT-17 NER (test set, entity P / R / F)", ""]
    base, elmo = m["ner_baseline"], m["ner_elmo"]
    lines += ["| entity type | baseline P | baseline R | baseline F | ELMo P | ELMo R | ELMo F |", "|---|---|---|---|---|---|---|"]
    for label in sorted(set(base["per_type"]) | set(elmo["per_type"])):
        row = [base["per_type"].get(label, {}), elmo["per_type"].get(label, {})]
        cells = [f"{100 * r.get(k, 0.0):.1f}" for r in row for k in ("p", "r", "f")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"**{100 * r[k]:.1f}**" for r in (base, elmo) for k in ("p", "r", "f")]
    lines += ["| **overall** | " + " | ".join(cells) + " |", ""]
    lines += ["## CLINC150 intents (in-scope test set)", "", "| model | accuracy | macro F |", "|---|---|---|"]
    for run in RUNS["textcat"]:
        lines.append(f"| {run} | {100 * m[run]['accuracy']:.1f} | {100 * m[run]['macro_f']:.1f} |")
    lines += ["", "## Speed", "", "| run | training time (s) | training words/s | prediction words/s |", "|---|---|---|---|"]
    for run in m:
        seconds, wps = train_stats(logs[run])
        lines.append(f"| {run} | {seconds:.0f} | {wps:.0f} | {m[run]['words_per_second']:.0f} |")
    lines += ["", "## Learned layer weights (softmax s_j over biLM layers 0..L, and gamma)", ""]
    for run, per_component in mixes.items():
        for comp, mix in per_component.items():
            lines.append(f"- {run} / {comp}: s = [{', '.join(f'{w:.3f}' for w in mix['s'])}], gamma = {mix['gamma']:.3f}")
    lines += ["", "Data: WNUT-17 (CC-BY 4.0, Derczynski et al. 2017); CLINC150 (CC-BY 3.0, Larson et al. 2019);",
              "raw text from the WNUT-17 source pool and PolyAI task-specific-datasets (CC-BY 4.0)."]
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (task, runs) in zip(axes, RUNS.items()):
        for run in runs:
            log = logs[run]
            ax.plot([r["step"] for r in log], [r["score"] for r in log], label=run, marker=".")
        ax.set_title(f"{task}: dev score by step")
        ax.set_xlabel("step")
        ax.legend()
    ax = axes[2]
    width = 0.35
    for k, (run, per_component) in enumerate(mixes.items()):
        for comp, mix in per_component.items():
            xs = [j + k * width for j in range(len(mix["s"]))]
            ax.bar(xs, mix["s"], width, label=f"{run}/{comp} (gamma {mix['gamma']:.2f})")
    ax.set_title("learned layer weights softmax(s)")
    ax.set_xlabel("biLM layer (0 = token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output / "report.png", dpi=100)
    print((output / "report.md").read_text())


if __name__ == "__main__":
    typer.run(main)
