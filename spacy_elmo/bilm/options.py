"""The biLM hyper-parameters, read from and written to the published ``options.json`` layout."""
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..files import existing_file

ACTIVATIONS = ("relu", "tanh")
MAX_CHARACTERS = 50  # characters per token, as published
# Upper bounds far above every published biLM (at most 4096 cells, 512 projection, 2048 filters, 2 highways,
# 2 layers, 16-wide character embedding): a typo such as 1e9 is refused here, not by the allocator.
MAX_SIZES = {"char_cnn.n_highway": 16, "char_cnn.embedding.dim": 1024, "lstm.dim": 32768,
             "lstm.projection_dim": 8192, "lstm.n_layers": 16, "filter count": 16384}
MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32; the published `original` has 93.6M
_CNN_KEYS = ("activation", "filters", "n_highway", "embedding", "n_characters", "max_characters_per_token")
_LSTM_KEYS = ("dim", "projection_dim", "n_layers", "cell_clip", "proj_clip", "use_skip_connections")
_MISSING = object()


@dataclass(frozen=True)
class CharCNNOptions:
    """The character CNN: embedding, filters ``[(width, count), ...]``, highways, activation."""

    filters: Tuple[Tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024))
    n_highway: int = 2
    embedding_dim: int = 16
    activation: str = "relu"
    n_characters: int = 262
    max_characters_per_token: int = 50

    @property
    def n_filters(self) -> int:
        return sum(count for _, count in self.filters)


@dataclass(frozen=True)
class LSTMOptions:
    """The LSTM stack of each direction."""

    dim: int = 4096
    projection_dim: int = 512
    n_layers: int = 2
    cell_clip: float = 3.0
    proj_clip: float = 3.0
    use_skip_connections: bool = True


@dataclass(frozen=True)
class BiLMOptions:
    """Everything that fixes the shapes and the maths of a biLM.

    ``extra`` keeps the training keys of bilm-tf files (``n_tokens_vocab``, ``dropout``, ...) so that an
    exported file carries them through unchanged.
    """

    char_cnn: CharCNNOptions = field(default_factory=CharCNNOptions)
    lstm: LSTMOptions = field(default_factory=LSTMOptions)
    extra: Dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def output_dim(self) -> int:
        """Width of every returned layer: both directions of the projection."""
        return 2 * self.lstm.projection_dim

    @property
    def n_output_layers(self) -> int:
        """Token layer plus one per LSTM layer."""
        return self.lstm.n_layers + 1

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "BiLMOptions":
        """Options from the published layout; every key is checked (type and range) and errors name it."""
        top = _section(data, "")
        cnn = _section(top.get("char_cnn"), "char_cnn", _CNN_KEYS)
        lstm = _section(top.get("lstm"), "lstm", _LSTM_KEYS)
        embedding = _section(cnn.get("embedding"), "char_cnn.embedding", ("dim",))
        char_opts = CharCNNOptions(
            filters=_filters(cnn.get("filters", _MISSING)),
            n_highway=_integer(cnn, "char_cnn", "n_highway", minimum=0),
            embedding_dim=_integer(embedding, "char_cnn.embedding", "dim"),
            activation=_choice(cnn, "char_cnn", "activation", ACTIVATIONS, default="relu"),
            n_characters=_choice(cnn, "char_cnn", "n_characters", (261, 262), default=262),
            max_characters_per_token=_choice(cnn, "char_cnn", "max_characters_per_token", (50,), default=50),
        )
        lstm_opts = LSTMOptions(
            dim=_integer(lstm, "lstm", "dim"),
            projection_dim=_integer(lstm, "lstm", "projection_dim"),
            n_layers=_integer(lstm, "lstm", "n_layers"),
            cell_clip=_clip(lstm, "cell_clip"),
            proj_clip=_clip(lstm, "proj_clip"),
            use_skip_connections=_boolean(lstm, "lstm", "use_skip_connections", default=False),
        )
        extra = {k: v for k, v in top.items() if k not in ("char_cnn", "lstm")}
        options = cls(char_cnn=char_opts, lstm=lstm_opts, extra=extra)
        n_parameters = options.n_parameters
        if n_parameters > MAX_PARAMETERS:
            raise ValueError(f"the sizes (lstm.dim {lstm_opts.dim}, lstm.projection_dim {lstm_opts.projection_dim}, "
                             f"lstm.n_layers {lstm_opts.n_layers}, {char_opts.n_filters} char_cnn.filters, "
                             f"char_cnn.n_highway {char_opts.n_highway}) make a biLM "
                             f"of {n_parameters:,} parameters, over the limit of {MAX_PARAMETERS:,}")
        return options

    @property
    def n_parameters(self) -> int:
        """The biLM's parameter count, from the options alone (checked before anything is allocated)."""
        cnn, lstm = self.char_cnn, self.lstm
        n_filters, proj, cells = cnn.n_filters, lstm.projection_dim, lstm.dim
        char_side = 262 * cnn.embedding_dim + sum(width * cnn.embedding_dim * count + count for width, count in cnn.filters)
        char_side += cnn.n_highway * (n_filters * 2 * n_filters + 2 * n_filters) + n_filters * proj + proj
        per_layer = 2 * ((proj + proj) * 4 * cells + 4 * cells + cells * proj)
        return char_side + lstm.n_layers * per_layer

    def to_dict(self) -> Dict[str, Any]:
        cnn = self.char_cnn
        data: Dict[str, Any] = dict(self.extra)
        data["lstm"] = asdict(self.lstm)
        data["char_cnn"] = {
            "activation": cnn.activation,
            "filters": [list(f) for f in cnn.filters],
            "n_highway": cnn.n_highway,
            "embedding": {"dim": cnn.embedding_dim},
            "n_characters": cnn.n_characters,
            "max_characters_per_token": cnn.max_characters_per_token,
        }
        return data

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "BiLMOptions":
        path = existing_file(path, "biLM options file")
        try:
            data = json.loads(path.read_bytes().decode("utf8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"biLM options file {path} is not UTF-8 text (byte {err.start}): not an options.json?") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"biLM options file {path} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_file(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf8")


def _describe(value: Any) -> str:
    return "nothing" if value is _MISSING else f"{value!r} ({type(value).__name__})"


def _key(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def _section(value: Any, name: str, allowed: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    if value is None and name:
        raise ValueError(f"key '{name}' is missing")
    if not isinstance(value, dict):
        where = f"key '{name}'" if name else "the options"
        raise ValueError(f"{where} must be a JSON object, got {_describe(value)}")
    if allowed is not None:
        unknown = sorted(k for k in value if k not in allowed)
        if unknown:  # a misspelt key would otherwise fall back to its default unnoticed
            raise ValueError(f"unknown keys in '{name}': {unknown} (expected some of {list(allowed)})")
    return value


def _as_int(value: Any) -> Optional[int]:
    """``value`` as an int if it is one (an integral float too: nothing is lost, and the upper bounds of
    :func:`_integer` refuse a ``1e9``); None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _integer(data: Dict[str, Any], section: str, name: str, minimum: int = 1) -> int:
    value = data.get(name, _MISSING)
    number = _as_int(value)
    key = _key(section, name)
    maximum = MAX_SIZES[key]
    if number is None or not minimum <= number <= maximum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"key '{key}' must be {kind} of at most {maximum}, got {_describe(value)}")
    return number


def _choice(data: Dict[str, Any], section: str, name: str, choices: Tuple[Any, ...], default: Any) -> Any:
    value = data.get(name, default)
    found = _as_int(value) if isinstance(choices[0], int) else value if isinstance(value, str) else None
    if found not in choices:
        raise ValueError(f"key '{_key(section, name)}' must be one of {list(choices)}, got {_describe(value)}")
    return found


def _boolean(data: Dict[str, Any], section: str, name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"key '{_key(section, name)}' must be true or false, got {_describe(value)}")
    return value


def _clip(data: Dict[str, Any], name: str) -> float:
    """A clip value: a finite number >= 0, or null (0 and null: no clipping)."""
    value = data.get(name)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"key 'lstm.{name}' must be a finite number >= 0 or null (no clipping), got {_describe(value)}")
    return float(value)


def _filters(value: Any) -> Tuple[Tuple[int, int], ...]:
    """``[[width, count], ...]``: at least one filter, widths 1 to 50, counts 1 to ``MAX_SIZES["filter count"]``."""
    most = MAX_SIZES["filter count"]
    problem = f"key 'char_cnn.filters' must be a non-empty list of [width, count] pairs of positive integers " \
              f"(width at most {MAX_CHARACTERS}, count at most {most}), got {_describe(value)}"
    if not isinstance(value, list) or not value:
        raise ValueError(problem)
    filters: List[Tuple[int, int]] = []
    for entry in value:
        width: Optional[int] = None
        count: Optional[int] = None
        if isinstance(entry, list) and len(entry) == 2:
            width, count = _as_int(entry[0]), _as_int(entry[1])
        if width is None or count is None or not (1 <= width <= MAX_CHARACTERS and 1 <= count <= most):
            raise ValueError(f"{problem}: entry {entry!r}")
        filters.append((width, count))
    return tuple(filters)


def preset(name: str) -> BiLMOptions:
    """The published sizes (``small``, ``medium``, ``original``) and a ``tiny`` one for tests."""
    sizes: Dict[str, Tuple[int, int, int, List[Tuple[int, int]]]] = {
        "tiny": (32, 16, 1, [(1, 4), (2, 4), (3, 8)]),
        "small": (1024, 128, 1, list(CharCNNOptions.filters)),
        "medium": (2048, 256, 1, list(CharCNNOptions.filters)),
        "original": (4096, 512, 2, list(CharCNNOptions.filters)),
    }
    if name not in sizes:
        raise ValueError(f"Unknown biLM preset {name!r}: expected one of {sorted(sizes)}")
    dim, proj, n_highway, filters = sizes[name]
    emb = 4 if name == "tiny" else 16
    return BiLMOptions(
        char_cnn=CharCNNOptions(filters=tuple(filters), n_highway=n_highway, embedding_dim=emb),
        lstm=LSTMOptions(dim=dim, projection_dim=proj),
    )
