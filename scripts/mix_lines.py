"""The first N lines of each text file (all of them for N = 0), shuffled together into one file.

The project's raw text: the CI run's small slice (``--limit``), and one shuffle over all lines. The pretraining
itself mixes its input files only chunk by chunk (20,000 lines, shuffled within the chunk).
"""

import random
from itertools import islice
from pathlib import Path
from typing import List

import typer


def main(
    sources: List[Path],
    output: Path = typer.Option(..., "--output", "-o"),
    limit: int = typer.Option(0, help="lines to keep from each file (0: all)"),
    seed: int = typer.Option(0),
) -> None:
    lines: List[str] = []
    for source in sources:
        with source.open(encoding="utf8") as src:
            lines.extend(line if line.endswith("\n") else line + "\n" for line in islice(src, limit or None))
    random.Random(seed).shuffle(lines)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(lines), encoding="utf8")
    typer.echo(f"{output}: {len(lines)} lines from {len(sources)} files")


if __name__ == "__main__":
    typer.run(main)
