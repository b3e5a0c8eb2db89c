"""spacy-elmo's own biLM format: ``options.json`` plus a torch state dict, loaded without unpickling.

:func:`bilm_to_bytes` is the one serialiser of a biLM: files (:func:`save_native`), a pipeline
component's bytes and a thinc layer's shim are all written from it. Every way in reads the state
through :func:`_load_state` (``weights_only=True``) and checks it with :func:`_checked_load`.
"""
import io
import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..bilm.token_ids import TokenIds, token_ids_from_dict
from ..files import atomic_write, existing, existing_file

OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.pt"
TOKENS_FILE = "tokens.json"  # only for a biLM whose tokens are not the published UTF-8 bytes
_FILES = {"options": OPTIONS_FILE, "weights": WEIGHTS_FILE, "tokens": TOKENS_FILE}  # bilm_to_bytes key -> file name


def _indices(state: Dict[str, torch.Tensor], prefix: str) -> int:
    """How many modules ``prefix.0``, ``prefix.1``, ... the state dict has weights for."""
    found = {key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)}
    return len(found)


def _check_state(state: Dict[str, torch.Tensor], options: BiLMOptions, source: str, tokens: Optional[TokenIds] = None) -> None:
    """The state dict against the options, before the model is built: first the numbers of filters,
    highways and LSTM layers (cheap, whatever the options say), then every name, shape and value."""
    counts = (
        ("char_cnn.filters", len(options.char_cnn.filters), "character filters", "token_encoder.convs."),
        ("char_cnn.n_highway", options.char_cnn.n_highway, "highway layers", "token_encoder.highways."),
        ("lstm.n_layers", options.lstm.n_layers, "LSTM layers", "lstm.layers."),
    )
    for key, wanted, what, prefix in counts:
        found = _indices(state, prefix)
        if found != wanted:
            raise ValueError(f"{source} holds {found} {what}, but the options have {key} with {wanted}")
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {k: tuple(v.shape) for k, v in BiLM(options, tokens).state_dict().items()}
    check_arrays(state, expected, source, "the options")


def check_arrays(state: Dict[str, torch.Tensor], expected: Mapping[str, tuple], source: str, against: str) -> None:
    """Every array of ``state`` named, shaped, typed and valued as ``against`` (the options, an architecture)
    requires: the one check of weights before a biLM is built, for every family."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not match {against} (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for name, shape in expected.items():
        tensor = state[name]
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"{source}: weight '{name}' has shape {tuple(tensor.shape)}, but {against} require {tuple(shape)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{source}: weight '{name}' holds {tensor.dtype} values, not floating point numbers")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{source}: weight '{name}' holds NaN or infinite values")


def _checked_load(options: BiLMOptions, state: Dict[str, torch.Tensor], source: str, tokens: Optional[TokenIds] = None) -> BiLM:
    _check_state(state, options, source, tokens)
    bilm = BiLM(options, tokens)
    bilm.load_state_dict(state)
    return bilm.eval()


def _load_state(data: Union[bytes, Path], source: str) -> Dict[str, torch.Tensor]:
    try:
        stream = io.BytesIO(data) if isinstance(data, bytes) else data
        state = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or truncated files
        raise ValueError(f"{source}: cannot read the biLM weights (truncated or not a torch state dict): {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{source}: holds a {type(state).__name__}, not a state dict of the biLM weights")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor of the biLM weights")
    return state


def save_native(bilm: BiLM, path: Union[str, Path]) -> None:
    """Write ``path/options.json`` and ``path/weights.pt``, each replaced atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = bilm_to_bytes(bilm)
    for key, data in files.items():
        atomic_write(path / _FILES[key], lambda tmp: tmp.write_bytes(data))
    if "tokens" not in files and (path / TOKENS_FILE).exists():  # a previous model's vocabulary
        (path / TOKENS_FILE).unlink()


def load_native(path: Union[str, Path]) -> BiLM:
    """Read a biLM written by :func:`save_native`; the weights are checked against the options before
    the model is built."""
    path = existing(path, "biLM directory")
    if not path.is_dir() or not any((path / name).exists() for name in (OPTIONS_FILE, WEIGHTS_FILE)):
        raise ValueError(f"{path} is not a native biLM directory ({OPTIONS_FILE} + {WEIGHTS_FILE})")
    options = BiLMOptions.from_file(path / OPTIONS_FILE)
    weights = existing_file(path / WEIGHTS_FILE, "biLM weights")
    tokens = _tokens((path / TOKENS_FILE).read_bytes() if (path / TOKENS_FILE).exists() else None, str(path / TOKENS_FILE))
    return _checked_load(options, _load_state(weights, str(weights)), str(weights), tokens)


def _tokens(data: Optional[bytes], source: str) -> TokenIds:
    try:
        return token_ids_from_dict(None if data is None else json.loads(data))
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{source}: {err}") from err


def bilm_to_bytes(bilm: BiLM) -> Dict[str, bytes]:
    """``{"options": options.json's text, "weights": the state dict as torch.save writes it}``."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in bilm.state_dict().items()}, buffer)
    options = json.dumps(bilm.options.to_dict(), indent=2).encode("utf8")
    files = {"options": options, "weights": buffer.getvalue()}
    tokens = bilm.tokens.to_dict()
    if tokens is not None:
        files["tokens"] = json.dumps(tokens, ensure_ascii=False).encode("utf8")
    return files


def bilm_from_bytes(data: Mapping[str, bytes], source: str = "biLM bytes") -> BiLM:
    """The inverse of :func:`bilm_to_bytes`."""
    try:
        options = BiLMOptions.from_dict(json.loads(data["options"]))
    except (ValueError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{source}: invalid options: {err}") from err
    tokens = _tokens(data.get("tokens"), source)
    return _checked_load(options, _load_state(data["weights"], source), source, tokens)
