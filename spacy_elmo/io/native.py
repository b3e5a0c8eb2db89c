"""spacy-elmo's own biLM format: ``options.json`` plus a torch state dict, loaded without unpickling.

:func:`bilm_to_bytes` is the one serialiser of a biLM: files (:func:`save_native`), a pipeline
component's bytes and a thinc layer's shim are all written from it. Every way in reads the state
through :func:`_load_state` (``weights_only=True``) and checks it with :func:`_checked_load`.
"""
import io
import json
from pathlib import Path
from typing import Dict, Mapping, Union

import torch

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from .files import write_atomic

OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.pt"
_FILES = {"options": OPTIONS_FILE, "weights": WEIGHTS_FILE}  # bilm_to_bytes key -> file name


def _checked_load(bilm: BiLM, state: Dict[str, torch.Tensor], source: str) -> BiLM:
    expected = bilm.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not match the options (missing {missing}, unexpected {unexpected})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{source}: weight '{name}' has shape {tuple(state[name].shape)}, "
                f"but the options require {tuple(tensor.shape)}"
            )
    bilm.load_state_dict(state)
    return bilm.eval()


def _load_state(data: Union[bytes, Path], source: str) -> Dict[str, torch.Tensor]:
    try:
        stream = io.BytesIO(data) if isinstance(data, bytes) else data
        return torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or truncated files
        raise ValueError(f"{source}: cannot read the biLM weights (truncated or not a torch state dict): {err}") from err


def save_native(bilm: BiLM, path: Union[str, Path]) -> None:
    """Write ``path/options.json`` and ``path/weights.pt``, each replaced atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for key, data in bilm_to_bytes(bilm).items():
        write_atomic(path / _FILES[key], data)


def load_native(path: Union[str, Path]) -> BiLM:
    """Read a biLM written by :func:`save_native`."""
    path = Path(path)
    weights = path / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(f"biLM weights not found: {weights}")
    bilm = BiLM(BiLMOptions.from_file(path / OPTIONS_FILE))
    return _checked_load(bilm, _load_state(weights, str(weights)), str(weights))


def bilm_to_bytes(bilm: BiLM) -> Dict[str, bytes]:
    """``{"options": options.json's text, "weights": the state dict as torch.save writes it}``."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in bilm.state_dict().items()}, buffer)
    options = json.dumps(bilm.options.to_dict(), indent=2).encode("utf8")
    return {"options": options, "weights": buffer.getvalue()}


def bilm_from_bytes(data: Mapping[str, bytes], source: str = "biLM bytes") -> BiLM:
    """The inverse of :func:`bilm_to_bytes`."""
    bilm = BiLM(BiLMOptions.from_dict(json.loads(data["options"])))
    return _checked_load(bilm, _load_state(data["weights"], source), source)
