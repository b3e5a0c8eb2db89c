"""spacy-elmo's own biLM format: ``options.json`` plus a torch state dict, loaded without unpickling."""
import io
import json
from pathlib import Path
from typing import Dict, Union

import torch

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions

OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.pt"


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
    """Write ``path/options.json`` and ``path/weights.pt``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bilm.options.to_file(path / OPTIONS_FILE)
    torch.save({k: v.detach().cpu() for k, v in bilm.state_dict().items()}, path / WEIGHTS_FILE)


def load_native(path: Union[str, Path]) -> BiLM:
    """Read a biLM written by :func:`save_native`."""
    path = Path(path)
    weights = path / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(f"biLM weights not found: {weights}")
    bilm = BiLM(BiLMOptions.from_file(path / OPTIONS_FILE))
    return _checked_load(bilm, _load_state(weights, str(weights)), str(weights))


def bilm_to_bytes(bilm: BiLM) -> Dict[str, bytes]:
    """Options and weights as bytes, for ``to_bytes`` of the pipeline component."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in bilm.state_dict().items()}, buffer)
    return {"options": json.dumps(bilm.options.to_dict()).encode("utf8"), "weights": buffer.getvalue()}


def bilm_from_bytes(data: Dict[str, bytes]) -> BiLM:
    """The inverse of :func:`bilm_to_bytes`."""
    bilm = BiLM(BiLMOptions.from_dict(json.loads(data["options"])))
    return _checked_load(bilm, _load_state(data["weights"], "biLM bytes"), "biLM bytes")
