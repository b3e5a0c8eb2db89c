"""Training checkpoints: written atomically, read back without unpickling."""
from pathlib import Path
from typing import Any, Dict, Union

import torch

from ..files import atomic_write, existing_file


def save_state(state: Dict[str, Any], path: Union[str, Path]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Union[str, Path]) -> Dict[str, Any]:
    path = existing_file(path, "Checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise ValueError(f"Checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err
