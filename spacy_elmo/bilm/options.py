"""The biLM hyper-parameters, read from and written to the published ``options.json`` layout."""
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import json

ACTIVATIONS = ("relu", "tanh")


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
        try:
            cnn = data["char_cnn"]
            lstm = data["lstm"]
            char_opts = CharCNNOptions(
                filters=tuple((int(w), int(n)) for w, n in cnn["filters"]),
                n_highway=int(cnn["n_highway"]),
                embedding_dim=int(cnn["embedding"]["dim"]),
                activation=str(cnn.get("activation", "relu")),
                n_characters=int(cnn.get("n_characters", 262)),
                max_characters_per_token=int(cnn.get("max_characters_per_token", 50)),
            )
            lstm_opts = LSTMOptions(
                dim=int(lstm["dim"]),
                projection_dim=int(lstm["projection_dim"]),
                n_layers=int(lstm["n_layers"]),
                cell_clip=float(lstm["cell_clip"]) if lstm.get("cell_clip") is not None else 0.0,
                proj_clip=float(lstm["proj_clip"]) if lstm.get("proj_clip") is not None else 0.0,
                use_skip_connections=bool(lstm.get("use_skip_connections", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"Invalid biLM options: missing or malformed key {err!s}") from err
        if char_opts.activation not in ACTIVATIONS:
            raise ValueError(f"Unsupported char_cnn activation {char_opts.activation!r}: expected one of {ACTIVATIONS}")
        if char_opts.n_characters not in (261, 262):
            raise ValueError(f"char_cnn.n_characters must be 261 or 262, got {char_opts.n_characters}")
        if char_opts.max_characters_per_token != 50:
            raise ValueError("Only max_characters_per_token = 50 (the published value) is supported")
        extra = {k: v for k, v in data.items() if k not in ("char_cnn", "lstm")}
        return cls(char_cnn=char_opts, lstm=lstm_opts, extra=extra)

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
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"biLM options file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"biLM options file {path} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_file(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf8")


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
