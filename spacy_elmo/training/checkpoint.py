"""Atomic files: written to a temporary name beside the target, flushed, then moved over it."""
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Union

import torch

from ..bilm.model import BiLM
from ..io.native import OPTIONS_FILE, WEIGHTS_FILE


def atomic_write(path: Union[str, Path], write: Callable[[Path], object]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_state(state: Dict[str, Any], path: Union[str, Path]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise ValueError(f"Checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err


def save_bilm_atomic(bilm: BiLM, directory: Path) -> None:
    """:func:`spacy_elmo.io.save_native`'s layout, each file replaced atomically."""
    atomic_write(directory / OPTIONS_FILE, bilm.options.to_file)
    state = {k: v.detach().cpu() for k, v in bilm.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
