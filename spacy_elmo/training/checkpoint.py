"""Atomic files: written to a temporary name beside the target, flushed, then moved over it."""
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Dict, Union

import torch

from ..bilm.model import BiLM
from ..files import existing_file
from ..io.native import OPTIONS_FILE, WEIGHTS_FILE


def _new_file(directory: Path, name: str) -> str:
    """A new empty file beside the target with the mode an ordinary write would give it (0666 less the
    umask), so that other users can read what is written; ``tempfile.mkstemp`` would make it 0600."""
    while True:
        tmp = str(directory / f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as err:  # name the file the caller writes, not the temporary one
            raise type(err)(err.errno, err.strerror, str(directory / name)) from err


def atomic_write(path: Union[str, Path], write: Callable[[Path], None]) -> None:
    path = Path(path)
    tmp = _new_file(path.parent, path.name)
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
    path = existing_file(path, "Checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise ValueError(f"Checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err


def save_bilm_atomic(bilm: BiLM, directory: Path) -> None:
    """:func:`spacy_elmo.io.save_native`'s layout, each file replaced atomically."""
    atomic_write(directory / OPTIONS_FILE, bilm.options.to_file)
    state = {k: v.detach().cpu() for k, v in bilm.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
