"""`spacy train` over a given biLM, with every ELMo listener's width taken from the biLM's options: 2 x its
projection (256 for the published small, 512 for medium, 1024 for original, 5.5B and PubMed).

    python scripts/train_with_bilm.py configs/ner_elmo.cfg training/ner --weights elmo/weights.hdf5 \\
        --options elmo/options.json --paths.train train.spacy --paths.dev dev.spacy
    python scripts/train_with_bilm.py configs/ner_elmo.cfg training/ner_de --weights assets/elmo/efml_de \\
        --nlp.lang de --paths.train train_de.spacy --paths.dev dev_de.spacy

Other `--section.key value` arguments are config overrides, as `spacy train` takes them.
"""
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import typer
from spacy import util
from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train

from spacy_elmo.io import model_options

LISTENER = "spacy-elmo.ElmoListener.v1"
app = typer.Typer(add_completion=False)


def listener_blocks(config: Dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the config blocks that are ELMo listeners."""
    for key, value in config.items():
        if isinstance(value, dict):
            if value.get("@architectures") == LISTENER:
                yield prefix + key
            yield from listener_blocks(value, f"{prefix}{key}.")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="a spacy train config with ELMo listeners"),
    output: Path = typer.Argument(..., help="the training output directory"),
    weights: Path = typer.Option(..., exists=True, help="a published hdf5 file (with --options), a folder holding one "
                                 "(options.json beside it), an NLPL zip, an ELMoForManyLangs folder or a native biLM directory"),
    options: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="the options.json of an hdf5 file"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
) -> None:
    if options is None and weights.is_file() and weights.suffix.lower() != ".zip":
        raise typer.BadParameter(f"{weights} is an hdf5 file: give its --options")
    bilm = model_options(weights, options)  # any family, without reading its weights
    blocks = list(listener_blocks(util.load_config(config, interpolate=False)))
    if not blocks:
        raise typer.BadParameter(f"{config} has no {LISTENER} block")
    overrides = {"paths.elmo_weights": str(weights), **{f"{block}.width": bilm.output_dim for block in blocks}}
    if options is not None:
        overrides["paths.elmo_options"] = str(options)
    overrides.update(parse_config_overrides(ctx.args))
    print(f"biLM {weights}: listener width {bilm.output_dim} ({', '.join(blocks)})", flush=True)
    train(config, output, use_gpu=gpu_id, overrides=overrides)


if __name__ == "__main__":
    app()
