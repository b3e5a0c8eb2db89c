"""ELMoForManyLangs (HIT-SCIR) model folders: read without unpickling, mapped onto :class:`BiLM`.

A folder holds ``config.json`` (training arguments; ``config_path`` names the architecture JSON),
``char.dic`` and ``word.dic`` (``entry<TAB>id``), ``token_embedder.pkl`` and ``encoder.pkl`` (torch-saved
state dicts, read with ``weights_only=True``: tensors only, nothing else is ever unpickled).

The mapping onto the published maths (checked against the package's own code by the goldens):

* characters: :class:`~spacy_elmo.bilm.token_ids.CharVocabulary`; the table gains a zero row 0.
* highway: ``y = g x + (1 - g) relu(A x)`` with ``g = sigmoid(B x)``; ours gates the other way round,
  ``y = g' relu(A x) + (1 - g') x``: ``g' = 1 - g = sigmoid(-B x)``, so ``B`` and its bias change sign.
* projection: ``W [word; cnn] + b``; the word columns become the word embedding's projection.
* LSTM: ``x W_x^T + h W_h^T + b`` with gates in the order i, f, g, o and the forget bias inside ``b``;
  ours holds ``W^T`` in TensorFlow's order i, j (= g), f, o and adds the forget bias 1 at run time.
  Skip connections from layer 1 on, cell and projection clips: as ours.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..bilm.token_ids import EFML_CHAR_SPECIALS, EFML_WORD_SPECIALS, CharVocabulary
from .native import check_arrays

CONFIG_FILE, CHAR_DIC, WORD_DIC = "config.json", "char.dic", "word.dic"
TOKEN_EMBEDDER, ENCODER = "token_embedder.pkl", "encoder.pkl"
REQUIRED = (CONFIG_FILE, CHAR_DIC, TOKEN_EMBEDDER, ENCODER)  # word.dic: only when word_dim > 0

# the architecture the package bundles (elmoformanylangs/configs/cnn_{0,50}_100_512_4096_sample.json: the
# same values), which the released models name by a path on the authors' machine
_RELEASED = {
    "encoder": {"name": "elmo", "projection_dim": 512, "cell_clip": 3, "proj_clip": 3, "dim": 4096, "n_layers": 2},
    "token_embedder": {
        "name": "cnn", "activation": "relu", "n_highway": 2, "word_dim": 100, "char_dim": 50,
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "max_characters_per_token": 50,
    },
    "dropout": 0.1,
}
BUNDLED = {"cnn_50_100_512_4096_sample.json": _RELEASED, "cnn_0_100_512_4096_sample.json": _RELEASED}
_FORGET = 1.0  # ours adds it at run time; theirs is inside the bias


def is_efml_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in (TOKEN_EMBEDDER, ENCODER, CHAR_DIC))


def _json(path: Path, what: str) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_bytes().decode("utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the {what} is not valid UTF-8 JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the {what} must be a JSON object")
    return data


def architecture(folder: Path) -> Tuple[Dict[str, Any], str]:
    """The architecture JSON that ``config.json``'s ``config_path`` names, looked for where the package
    looks: that path (relative to the folder), its file name in the folder, the bundled copies."""
    config_file = folder / CONFIG_FILE
    config = _json(config_file, "ELMoForManyLangs config")
    named = config.get("config_path")
    if not isinstance(named, str) or not named:
        raise ValueError(f"{config_file}: no 'config_path' naming the architecture JSON")
    base = Path(named.replace("\\", "/")).name
    for candidate in (folder / named, folder / base):
        if candidate.is_file():
            return _json(candidate, "architecture JSON"), str(candidate)
    if base in BUNDLED:
        return BUNDLED[base], f"bundled {base}"
    raise ValueError(
        f"{config_file}: the architecture JSON {named!r} is neither in {folder} nor one of the bundled "
        f"{sorted(BUNDLED)}: copy it into the folder"
    )


def options_from_architecture(arch: Dict[str, Any], source: str) -> Tuple[BiLMOptions, int, int]:
    """``(options, word_dim, max_chars)`` from an architecture JSON."""
    enc, emb = arch.get("encoder"), arch.get("token_embedder")
    if not isinstance(enc, dict) or not isinstance(emb, dict):
        raise ValueError(f"{source}: needs the objects 'encoder' and 'token_embedder'")
    if str(enc.get("name", "")).lower() != "elmo" or str(emb.get("name", "")).lower() != "cnn":
        raise ValueError(
            f"{source}: encoder {enc.get('name')!r} / token_embedder {emb.get('name')!r}: only the 'elmo' "
            f"encoder over the 'cnn' token embedder (every released model) is supported"
        )
    if not isinstance(emb.get("char_dim"), int) or emb["char_dim"] <= 0:
        raise ValueError(f"{source}: token_embedder.char_dim must be a positive integer (a model without characters is not supported)")
    word_dim, max_chars = emb.get("word_dim", 0), emb.get("max_characters_per_token", 50)
    if not isinstance(word_dim, int) or word_dim < 0 or not isinstance(max_chars, int) or not 3 <= max_chars <= 1000:
        raise ValueError(f"{source}: token_embedder.word_dim {word_dim!r} / max_characters_per_token {max_chars!r} out of range")
    published = {
        "char_cnn": {"activation": emb.get("activation"), "filters": emb.get("filters"), "n_highway": emb.get("n_highway"),
                     "embedding": {"dim": emb["char_dim"]}},
        "lstm": {k: enc.get(k) for k in ("dim", "projection_dim", "n_layers", "cell_clip", "proj_clip")},
    }
    published["lstm"]["use_skip_connections"] = True  # ElmobiLm always adds them
    try:
        options = BiLMOptions.from_dict(published)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err
    return options, word_dim, max_chars


def read_dic(path: Path, specials: Tuple[str, ...]) -> Dict[str, int]:
    """``entry<TAB>id`` lines, read as the package reads them: lines split as ``codecs`` splits them, each
    stripped, and a line left with only its id is the ideographic space (U+3000) that the strip removed."""
    try:
        text = path.read_bytes().decode("utf8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from err
    table: Dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) == 1:
            fields.insert(0, "\u3000")
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"{path}: line {number} is not 'entry<TAB>id': {line[:60]!r}")
        table[fields[0]] = int(fields[1])
    missing = [s for s in specials if s not in table]
    if missing:
        raise ValueError(f"{path}: lacks the special entries {missing}")
    return table


def load_state(path: Path) -> Dict[str, torch.Tensor]:
    """A torch-saved state dict, tensors only (``weights_only=True``): a pickle that asks for anything else
    is refused before it runs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for a refused global; others for truncated or foreign files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: refused: not a plain torch state dict of tensors ({first})") from err
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: refused: holds a {type(state).__name__} that is not a state dict of tensors")
    return state


def _expected(options: BiLMOptions, n_chars: int, n_words: int, word_dim: int) -> Tuple[Dict[str, Tuple[int, ...]], Dict[str, Tuple[int, ...]]]:
    cnn, lstm = options.char_cnn, options.lstm
    n, p, c = cnn.n_filters, lstm.projection_dim, lstm.dim
    embedder: Dict[str, Tuple[int, ...]] = {"char_emb_layer.embedding.weight": (n_chars, cnn.embedding_dim)}
    if word_dim:
        embedder["word_emb_layer.embedding.weight"] = (n_words, word_dim)
    for i, (width, count) in enumerate(cnn.filters):
        embedder[f"convolutions.{i}.weight"] = (count, cnn.embedding_dim, width)
        embedder[f"convolutions.{i}.bias"] = (count,)
    for k in range(cnn.n_highway):
        embedder[f"highways._layers.{k}.weight"] = (2 * n, n)
        embedder[f"highways._layers.{k}.bias"] = (2 * n,)
    embedder["projection.weight"] = (p, word_dim + n)
    embedder["projection.bias"] = (p,)
    encoder: Dict[str, Tuple[int, ...]] = {}
    for k in range(lstm.n_layers):
        for d in ("forward", "backward"):
            encoder[f"{d}_layer_{k}.input_linearity.weight"] = (4 * c, p)
            encoder[f"{d}_layer_{k}.state_linearity.weight"] = (4 * c, p)
            encoder[f"{d}_layer_{k}.state_linearity.bias"] = (4 * c,)
            encoder[f"{d}_layer_{k}.state_projection.weight"] = (p, c)
    return embedder, encoder


def _gates(t: torch.Tensor) -> torch.Tensor:
    """Theirs (i, f, g, o) along dim 0 to ours (i, j=g, f, o)."""
    i, f, g, o = t.chunk(4, dim=0)
    return torch.cat([i, g, f, o])


def to_state(embedder: Dict[str, torch.Tensor], encoder: Dict[str, torch.Tensor], options: BiLMOptions, word_dim: int) -> Dict[str, torch.Tensor]:
    """Their two state dicts as a :class:`BiLM` state dict (the one place the two layouts meet)."""
    f32 = lambda t: t.detach().to(torch.float32).contiguous()  # noqa: E731
    chars = embedder["char_emb_layer.embedding.weight"]
    state = {"token_encoder.embedding.weight": f32(torch.cat([chars.new_zeros(1, chars.shape[1]), chars]))}
    for i in range(len(options.char_cnn.filters)):
        for part in ("weight", "bias"):
            state[f"token_encoder.convs.{i}.{part}"] = f32(embedder[f"convolutions.{i}.{part}"])
    n = options.char_cnn.n_filters
    for k in range(options.char_cnn.n_highway):
        w, b = embedder[f"highways._layers.{k}.weight"], embedder[f"highways._layers.{k}.bias"]
        state[f"token_encoder.highways.{k}.proj.weight"] = f32(torch.cat([w[:n], -w[n:]]))
        state[f"token_encoder.highways.{k}.proj.bias"] = f32(torch.cat([b[:n], -b[n:]]))
    projection = embedder["projection.weight"]
    state["token_encoder.projection.weight"] = f32(projection[:, word_dim:])
    state["token_encoder.projection.bias"] = f32(embedder["projection.bias"])
    if word_dim:
        state["token_encoder.words.embedding.weight"] = f32(embedder["word_emb_layer.embedding.weight"])
        state["token_encoder.words.projection.weight"] = f32(projection[:, :word_dim])
    c = options.lstm.dim
    for k in range(options.lstm.n_layers):
        cells = [f"{d}_layer_{k}" for d in ("forward", "backward")]
        prefix = f"lstm.layers.{k}"
        state[f"{prefix}.weight_ih"] = f32(torch.stack([_gates(encoder[f"{x}.input_linearity.weight"]).T for x in cells]))
        state[f"{prefix}.weight_hh"] = f32(torch.stack([_gates(encoder[f"{x}.state_linearity.weight"]).T for x in cells]))
        bias = torch.stack([_gates(encoder[f"{x}.state_linearity.bias"]) for x in cells]).to(torch.float32)
        bias[:, 2 * c : 3 * c] -= _FORGET
        state[f"{prefix}.bias"] = bias.contiguous()
        state[f"{prefix}.weight_proj"] = f32(torch.stack([encoder[f"{x}.state_projection.weight"].T for x in cells]))
    return state


def from_state(bilm: BiLM) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """The inverse of :func:`to_state`: ``(token_embedder state, encoder state)`` in their layout."""
    s = {k: v.detach().float().cpu() for k, v in bilm.state_dict().items()}
    options, tokens = bilm.options, bilm.tokens
    n, c = options.char_cnn.n_filters, options.lstm.dim
    embedder = {"char_emb_layer.embedding.weight": s["token_encoder.embedding.weight"][1:].clone()}
    projection = s["token_encoder.projection.weight"]
    if tokens.word_dim:
        embedder["word_emb_layer.embedding.weight"] = s["token_encoder.words.embedding.weight"]
        projection = torch.cat([s["token_encoder.words.projection.weight"], projection], dim=1)
    for i in range(len(options.char_cnn.filters)):
        for part in ("weight", "bias"):
            embedder[f"convolutions.{i}.{part}"] = s[f"token_encoder.convs.{i}.{part}"]
    for k in range(options.char_cnn.n_highway):
        w, b = s[f"token_encoder.highways.{k}.proj.weight"], s[f"token_encoder.highways.{k}.proj.bias"]
        embedder[f"highways._layers.{k}.weight"] = torch.cat([w[:n], -w[n:]])
        embedder[f"highways._layers.{k}.bias"] = torch.cat([b[:n], -b[n:]])
    embedder["projection.weight"], embedder["projection.bias"] = projection, s["token_encoder.projection.bias"]
    encoder: Dict[str, torch.Tensor] = {}
    ungate = lambda t: _gates(t)  # noqa: E731  (swapping the middle blocks is its own inverse)
    for k in range(options.lstm.n_layers):
        prefix = f"lstm.layers.{k}"
        for d, name in enumerate(("forward", "backward")):
            bias = s[f"{prefix}.bias"][d].clone()
            bias[2 * c : 3 * c] += _FORGET
            encoder[f"{name}_layer_{k}.input_linearity.weight"] = ungate(s[f"{prefix}.weight_ih"][d].T).contiguous()
            encoder[f"{name}_layer_{k}.state_linearity.weight"] = ungate(s[f"{prefix}.weight_hh"][d].T).contiguous()
            encoder[f"{name}_layer_{k}.state_linearity.bias"] = ungate(bias)
            encoder[f"{name}_layer_{k}.state_projection.weight"] = s[f"{prefix}.weight_proj"][d].T.contiguous()
    return embedder, encoder


def missing_files(folder: Path) -> List[str]:
    return [name for name in REQUIRED if not (folder / name).is_file()]


def load_efml(folder: Path, language: Optional[str] = None) -> BiLM:
    """A :class:`BiLM` from an ELMoForManyLangs folder, every file checked before the model is built."""
    missing = missing_files(folder)
    if missing:
        raise ValueError(f"{folder}: an ELMoForManyLangs folder needs {list(REQUIRED)}; missing {missing}")
    arch, arch_source = architecture(folder)
    options, word_dim, max_chars = options_from_architecture(arch, arch_source)
    characters = read_dic(folder / CHAR_DIC, EFML_CHAR_SPECIALS)
    words = None
    if word_dim:
        if not (folder / WORD_DIC).is_file():
            raise ValueError(f"{folder}: the architecture {arch_source} has word_dim {word_dim}, but {WORD_DIC} is missing")
        words = read_dic(folder / WORD_DIC, EFML_WORD_SPECIALS)
    tokens = CharVocabulary(characters, words, word_dim, max_chars)
    embedder_state, encoder_state = load_state(folder / TOKEN_EMBEDDER), load_state(folder / ENCODER)
    # the package sizes its tables by the number of entries; ids must lie inside them
    n_chars, n_words = len(characters), 0 if words is None else len(words)
    for table, size, name in ((characters, n_chars, CHAR_DIC), (words or {}, n_words, WORD_DIC)):
        if table and max(table.values()) >= size:
            raise ValueError(f"{folder / name}: ids must be 0 to {size - 1} (one per line), found {max(table.values())}")
    expected_embedder, expected_encoder = _expected(options, n_chars, n_words, word_dim)
    check_arrays(embedder_state, expected_embedder, str(folder / TOKEN_EMBEDDER), f"the architecture {arch_source} and vocabularies")
    check_arrays(encoder_state, expected_encoder, str(folder / ENCODER), f"the architecture {arch_source} and vocabularies")
    if language:
        options = BiLMOptions(options.char_cnn, options.lstm, {"language": language})
    bilm = BiLM(options, tokens)
    bilm.load_state_dict(to_state(embedder_state, encoder_state, options, word_dim))
    return bilm.eval()


def save_efml(bilm: BiLM, folder: Path, architecture_name: str = "architecture.json") -> None:
    """Write ``bilm`` (an ELMoForManyLangs model) back in the package's folder layout."""
    from ..bilm.token_ids import _by_id

    tokens = bilm.tokens
    if not isinstance(tokens, CharVocabulary):
        raise ValueError("only a biLM with an ELMoForManyLangs character vocabulary can be written as an ELMoForManyLangs folder")
    folder.mkdir(parents=True, exist_ok=True)
    o = bilm.options
    arch = {
        "encoder": {"name": "elmo", "projection_dim": o.lstm.projection_dim, "cell_clip": o.lstm.cell_clip,
                    "proj_clip": o.lstm.proj_clip, "dim": o.lstm.dim, "n_layers": o.lstm.n_layers},
        "token_embedder": {"name": "cnn", "activation": o.char_cnn.activation,
                           "filters": [list(f) for f in o.char_cnn.filters], "n_highway": o.char_cnn.n_highway,
                           "word_dim": tokens.word_dim, "char_dim": o.char_cnn.embedding_dim,
                           "max_characters_per_token": tokens.max_chars},
        "dropout": 0.0,
    }
    (folder / architecture_name).write_text(json.dumps(arch, indent=1), encoding="utf8")
    (folder / CONFIG_FILE).write_text(json.dumps({"config_path": architecture_name}), encoding="utf8")
    for name, table in ((CHAR_DIC, tokens.characters), (WORD_DIC, tokens.words)):
        if table is not None:
            lines = [f"{entry}\t{i}" for i, entry in enumerate(_by_id(table)) if entry is not None]
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    embedder, encoder = from_state(bilm)
    torch.save(embedder, folder / TOKEN_EMBEDDER)
    torch.save(encoder, folder / ENCODER)
