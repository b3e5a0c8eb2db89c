"""Copy the first N lines of a text file (all of them for N = 0): a small slice of the raw text for quick runs."""
from itertools import islice
from pathlib import Path

import typer


def main(source: Path, output: Path, limit: int = typer.Option(0, help="lines to keep (0: all)")) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf8") as src, output.open("w", encoding="utf8") as out:
        out.writelines(islice(src, limit or None))


if __name__ == "__main__":
    typer.run(main)
