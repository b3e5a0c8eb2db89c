"""Print each task's learned ELMo mix (softmax weights s_j over the biLM layers, and gamma) from a pipeline.

    python scripts/show_layer_weights.py training/ner_elmo/seed0/model-best [--json out.json]
"""
import json
from pathlib import Path
from typing import Dict, Optional

import spacy
import typer

from spacy_elmo.layers.scalar_mix import layer_weights


def learned_mixes(model_dir: Path) -> Dict[str, Dict]:
    """``{component: {"s": [...], "gamma": g, ...}}`` for every component with an ELMo mix."""
    nlp = spacy.load(model_dir)
    out = {}
    for name, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if model is None or not hasattr(model, "walk"):
            continue
        for i, node in enumerate(n for n in model.walk() if n.name == "elmo_scalar_mix"):
            weights, gamma = layer_weights(node)
            key = name if i == 0 else f"{name}[{i}]"
            out[key] = {"s": weights, "gamma": gamma, "layer_norm": node.attrs["layer_norm"]}
    return out


def main(model_dir: Path, json_path: Optional[Path] = typer.Option(None, "--json")) -> None:
    mixes = learned_mixes(model_dir)
    if not mixes:
        raise SystemExit(f"{model_dir}: no component has an ELMo mix (spacy-elmo.ElmoListener.v1)")
    for name, mix in mixes.items():
        layers = "  ".join(f"s_{j}={w:.4f}" for j, w in enumerate(mix["s"]))
        print(f"{name}: {layers}  gamma={mix['gamma']:.4f}  (layer 0 = token layer)")
    if json_path is not None:
        json_path.write_text(json.dumps(mixes, indent=2))


if __name__ == "__main__":
    typer.run(main)
