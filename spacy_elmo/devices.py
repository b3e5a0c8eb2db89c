"""Device names ("auto", "cpu", "cuda", "cuda:N"), checked against what this machine has."""
from typing import List

import torch


def available_devices() -> List[str]:
    """The device names that work here."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def parse_device(name: str) -> torch.device:
    """The torch device of ``name``; an error that says what is available when it cannot be used here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch's error for a malformed name
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'; available here: {available_devices()}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device {name!r}: CUDA is not available ({why}); available here: {available_devices()}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: there is no such GPU; available here: {available_devices()}")
    return device
