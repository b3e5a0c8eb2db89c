"""The first N lines of each text file (all of them for N = 0), shuffled together into one file.

The project's raw text is prepared as bilm-tf expects its shards: shuffled beforehand. The WNUT-17 source
pool comes in blocks by source (tweets, then YouTube comments, ...), and the pretraining shuffles only within
chunks of 20,000 lines (it mixes its input files, not the order inside one). ``--limit``: the CI run's slice.
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
