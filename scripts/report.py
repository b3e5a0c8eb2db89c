"""Write the project report over the seeds: reports/report.md (the pretraining's held-out perplexity; each test
score's mean, min - max, sample standard deviation and per-seed figures, for the baseline, ELMo, and ELMo minus
baseline seed by seed; speed; learned layer weights), report.json (the same figures) and report.png (dev score by
step, and each task's learned ELMo layer weights)."""
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import typer  # noqa: E402

from runs import parse_list, read_json, read_pretraining, seed_name  # noqa: E402  (scripts/ is on sys.path)
from show_layer_weights import learned_mixes  # noqa: E402

RUNS = {"ner": ("ner_baseline", "ner_elmo"), "textcat": ("textcat_baseline", "textcat_elmo")}
SCORES = {"ner": {"p": "P", "r": "R", "f": "F"}, "textcat": {"accuracy": "accuracy", "macro_f": "macro F"}}
ROWS = {"baseline": "baseline", "elmo": "ELMo", "elmo_minus_baseline": "ELMo − baseline"}
Metrics = Dict[str, List[Dict[str, Any]]]  # run -> its metrics, one dict per seed in seed order


def spread(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """Mean, min, max and sample standard deviation (None for a single value)."""
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None}


def load_metrics(metrics: Path, seeds: Sequence[int]) -> Metrics:
    """Each run's metrics/<run>/seed<N>.json, as scripts/evaluate.py writes them."""
    return {run: [read_json(metrics / run / f"{seed_name(seed)}.json", f"evaluate seed {seed} of {run} first")
                  for seed in seeds] for pair in RUNS.values() for run in pair}


def score_summary(m: Metrics) -> Dict[str, Dict[str, Dict[str, Dict[str, Any]]]]:
    """``{task: {score: {row: {"by_seed": [...], "mean", "min", "max", "sd"}}}}``, rows as in ROWS; the difference
    is taken seed by seed."""
    out: Dict[str, Dict[str, Dict[str, Dict[str, Any]]]] = {}
    for task, (base, elmo) in RUNS.items():
        out[task] = {}
        for score in SCORES[task]:
            b, e = [s[score] for s in m[base]], [s[score] for s in m[elmo]]
            rows = {"baseline": b, "elmo": e, "elmo_minus_baseline": [y - x for x, y in zip(b, e)]}
            out[task][score] = {row: {"by_seed": v, **spread(v)} for row, v in rows.items()}
    return out


def pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def score_lines(task: str, summary: Dict[str, Dict[str, Dict[str, Any]]], seeds: Sequence[int]) -> List[str]:
    """A markdown table of one task's scores (in %): mean, min – max, sample sd, then each seed's figure."""
    lines = ["| score | run | mean | min – max | sd | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|---|---|" + "---|" * len(seeds)]
    for score, label in SCORES[task].items():
        for row, name in ROWS.items():
            r = summary[score][row]
            cells = [pct(r["mean"]), f"{pct(r['min'])} – {pct(r['max'])}", pct(r["sd"]), *map(pct, r["by_seed"])]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return lines


def read_log(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def train_stats(log: List[dict]) -> Tuple[float, float]:
    """(seconds, words per second) of a training run, from its last log line."""
    if not log:
        return 0.0, 0.0
    last = log[-1]
    return float(last["seconds"]), last["words"] / max(last["seconds"], 1)


def pretraining_line(path: Path, run: Dict[str, Any]) -> str:
    held_out = "no held-out text" if run["dev_ppl"] is None else f"held-out perplexity {run['dev_ppl']:.1f}"
    return (f"Pretrained biLM ({path.parent}): {run['steps']:,} steps, {run['tokens_seen']:,} tokens in "
            f"{run['minutes']:.1f} min; {held_out} (unigram perplexity {run['unigram_ppl']:.1f}).")


def mean_curve(logs: Sequence[List[dict]]) -> Tuple[List[int], List[float]]:
    """The mean dev score over the seeds at each step that every seed evaluated."""
    by_seed = [{r["step"]: r["score"] for r in log} for log in logs if log]
    if not by_seed:
        return [], []
    steps = sorted(set.intersection(*(set(scores) for scores in by_seed)))
    return steps, [statistics.fmean(scores[step] for scores in by_seed) for step in steps]


def plot(logs: Dict[str, List[List[dict]]], mixes: Dict[str, List[Dict[str, Any]]], n_seeds: int, path: Path) -> None:
    """Dev score by step (each seed thin, their mean bold) per task, and each task's learned layer weights."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (task, runs) in zip(axes, RUNS.items()):
        for colour, run in enumerate(runs):
            for log in logs[run]:
                ax.plot([r["step"] for r in log], [r["score"] for r in log], color=f"C{colour}", linewidth=0.8,
                        alpha=0.35)
            steps, mean = mean_curve(logs[run])
            ax.plot(steps, mean, color=f"C{colour}", linewidth=2.5, label=f"{run} (mean of {n_seeds} seeds)")
        ax.set_title(f"{task}: dev score by step (thin: each seed)")
        ax.set_xlabel("step")
        ax.legend(loc="best")
    ax = axes[2]
    bars = [(f"{run}/{comp}", [seed_mix[comp]["s"] for seed_mix in per_seed])
            for run, per_seed in mixes.items() for comp in per_seed[0]]
    n_layers = max((len(by_seed[0]) for _, by_seed in bars), default=0)
    width = 0.8 / max(len(bars), 1)
    for k, (label, by_seed) in enumerate(bars):
        xs = [j + (k - (len(bars) - 1) / 2) * width for j in range(len(by_seed[0]))]
        ax.bar(xs, [statistics.fmean(column) for column in zip(*by_seed)], width, color=f"C{k}",
               label=f"{label} (mean over seeds)")
        for s in by_seed:
            ax.plot(xs, s, "k.", markersize=4)
    ax.set_xticks(range(n_layers), [str(j) for j in range(n_layers)])
    ax.set_title("learned layer weights softmax(s); dots: each seed")
    ax.set_xlabel("biLM layer (0 = token layer)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(
    metrics: Path = typer.Option(Path("metrics")),
    training: Path = typer.Option(Path("training")),
    baselines: Optional[Path] = typer.Option(None, help="training folder of the baselines (default: --training)"),
    seeds: str = typer.Option("0", help="comma-separated seeds, such as 0,1,2"),
    pretraining: Optional[Path] = typer.Option(None, help="the pretraining's summary.json, shown if it exists"),
    bilm: str = typer.Option("", help="which biLM the ELMo runs used, for the title"),
    output: Path = typer.Option(Path("reports")),
) -> None:
    seed_list = parse_list(seeds, int, "--seeds")
    m = load_metrics(metrics, seed_list)
    summary = score_summary(m)
    folders = {run: (baselines or training) if run.endswith("_baseline") else training for run in m}
    logs = {run: [read_log(folders[run] / run / seed_name(s) / "log.jsonl") for s in seed_list] for run in m}
    mixes = {run: [learned_mixes(training / run / seed_name(s) / "model-best") for s in seed_list]
             for run in ("ner_elmo", "textcat_elmo")}
    facts = read_pretraining(pretraining) if pretraining is not None and pretraining.exists() else None
    lines = ["# spacy-elmo project report" + (f": {bilm}" if bilm else ""), ""]
    if pretraining is not None and facts is not None:
        lines += [pretraining_line(pretraining, facts), ""]
    lines += [f"Seeds {', '.join(map(str, seed_list))} (spaCy's `system.seed`): each score's mean, min – max and "
              "sample standard deviation over the seeds, then each seed's own; ELMo − baseline is taken seed by "
              "seed.", ""]
    lines += ["## WNUT-17 NER (test set, entity P / R / F)", ""] + score_lines("ner", summary["ner"], seed_list)
    lines += ["", "Entity F by type (mean over the seeds):", "",
              "| entity type | baseline P | baseline R | baseline F | ELMo P | ELMo R | ELMo F |",
              "|---|---|---|---|---|---|---|"]
    base, elmo = m["ner_baseline"], m["ner_elmo"]
    for label in sorted({t for s in base + elmo for t in s["per_type"]}):
        cells = [pct(statistics.fmean(s["per_type"].get(label, {}).get(k, 0.0) for s in run))
                 for run in (base, elmo) for k in ("p", "r", "f")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## CLINC150 intents (in-scope test set)", ""] + score_lines("textcat", summary["textcat"], seed_list)
    lines += ["", "## Speed (mean over the seeds)", "",
              "| run | training time (s) | training words/s | prediction words/s |", "|---|---|---|---|"]
    for run in m:
        stats = [train_stats(log) for log in logs[run]]
        seconds, wps = (statistics.fmean(column) for column in zip(*stats))
        predicted = statistics.fmean(s["words_per_second"] for s in m[run])
        lines.append(f"| {run} | {seconds:.0f} | {wps:.0f} | {predicted:.0f} |")
    lines += ["", "## Learned layer weights (softmax s_j over biLM layers 0..L, and gamma)", ""]
    for run, per_seed in mixes.items():
        for seed, per_component in zip(seed_list, per_seed):
            for comp, mix in per_component.items():
                weights = ", ".join(f"{w:.3f}" for w in mix["s"])
                lines.append(f"- {run} / seed {seed} / {comp}: s = [{weights}], gamma = {mix['gamma']:.3f}")
    lines += ["", "Data: WNUT-17 (CC-BY 4.0, Derczynski et al. 2017); CLINC150 (CC-BY 3.0, Larson et al. 2019);",
              "raw text from the WNUT-17 source pool and PolyAI task-specific-datasets (CC-BY 4.0)."]
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text("\n".join(lines) + "\n")
    (output / "report.json").write_text(json.dumps(
        {"bilm": bilm, "seeds": seed_list, "pretraining": facts, "scores": summary, "layer_weights": mixes}, indent=2))

    plot(logs, mixes, len(seed_list), output / "report.png")
    print((output / "report.md").read_text())


if __name__ == "__main__":
    typer.run(main)
