"""Atomic files with ordinary permissions: written under a hidden temporary name beside the target, flushed
to disk, then renamed over it, so a reader (or a resumed run) sees a whole file or none."""
import json
import os
from pathlib import Path
from typing import Any, Iterator

TMP_MARK = ".tmp-"


def temporary(path: Path) -> Path:
    """The hidden name a file is written under (created with the umask's permissions, unlike mkstemp's 0600)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``path``."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    tmp = temporary(path)
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    commit(tmp, path)


def leftovers(directory: Path) -> Iterator[Path]:
    """Temporary files a killed run left behind."""
    if directory.is_dir():
        yield from (p for p in directory.iterdir() if p.name.startswith(".") and TMP_MARK in p.name)
