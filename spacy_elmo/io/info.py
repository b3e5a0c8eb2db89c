"""What a biLM file or directory holds, and published hdf5 files to native biLM directories.

Behind ``python -m spacy_elmo convert`` and ``info`` (which adds a pretraining run's facts through
:func:`spacy_elmo.pretraining.run_info.describe_run`). Every file is read through the loaders, so a broken
file gets the loaders' errors. The digest is taken over the loaded biLM's arrays, whatever the format: a
published file and its conversion have the same digest.
"""
import hashlib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..bilm.model import BiLM
from ..bilm.token_ids import CharVocabulary
from ..files import existing
from .families import extract_vocabulary, family_of, load_with_family, model_language
from .hdf5 import load_hdf5
from .native import OPTIONS_FILE, WEIGHTS_FILE, load_native, save_native

PathLike = Union[str, Path]


def find_options(weights: Path) -> Path:
    """The options.json of a published hdf5 file: ``options.json`` beside it, or the published name
    (``elmo_X_weights[_Y].hdf5`` -> ``elmo_X_options.json``)."""
    candidates = [weights.parent / OPTIONS_FILE]
    if "_weights" in weights.name:
        candidates.append(weights.parent / (weights.name.split("_weights")[0] + "_options.json"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"{weights}: a published hdf5 weight file needs its options.json: pass --options "
                            f"(none found at {tried})")


def array_digest(bilm: BiLM) -> str:
    """sha256 over every array of the biLM (name, shape and float32 little-endian values, by name)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(bilm.state_dict().items()):
        array = tensor.detach().float().cpu().contiguous().numpy().astype("<f4", copy=False)
        digest.update(f"{name}:{tuple(array.shape)}\n".encode("utf8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def count_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _located(path: PathLike) -> Path:
    path = existing(path, "biLM weight file or directory")  # a link loop is named, not reported as missing
    if path.is_file() and path.name == WEIGHTS_FILE:  # the weights of a native directory: read the directory
        return path.parent
    return path


def _load(path: Path, options: Optional[PathLike]) -> Tuple[str, BiLM, Dict[str, Any]]:
    """``(kind, biLM, extra facts)`` for a published hdf5 file, a native directory, an NLPL zip or folder, or an
    ELMoForManyLangs folder."""
    family = family_of(path)
    if family in ("zip", "nlpl", "elmoformanylangs"):
        bilm, kind = load_with_family(path, options)
        return kind, bilm, {"options_file": str(options or (path / OPTIONS_FILE if family == "nlpl" else path))}
    if path.is_file():
        options_path = Path(options) if options is not None else find_options(path)
        return "hdf5", load_hdf5(options_path, path), {"options_file": str(options_path)}
    return "native", load_native(path), {"options_file": str(path / OPTIONS_FILE)}


def describe(path: PathLike, options: Optional[PathLike] = None) -> Dict[str, Any]:
    """Options, parameter counts, sizes, the listener width and the array digest of a biLM."""
    path = _located(path)
    kind, bilm, facts = _load(path, options)
    files = [path, Path(facts["options_file"])] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    files = [f for f in dict.fromkeys(files) if f.is_file()]
    opts = bilm.options
    tokens = bilm.tokens
    vocabulary: Dict[str, Any] = {"token_ids": tokens.kind}
    if isinstance(tokens, CharVocabulary):
        vocabulary.update(characters=len(tokens.characters), words=len(tokens.words or {}), word_dim=tokens.word_dim,
                          max_chars=tokens.max_chars)
    else:
        vocabulary["nlpl_vocab_words"] = len(extract_vocabulary(path)) if kind.startswith("nlpl") else 0
    return {
        "path": str(path),
        "kind": kind,
        "language": model_language(bilm),
        "vocabulary": vocabulary,
        **facts,
        "options": opts.to_dict(),
        "parameters": {"total": count_parameters(bilm), "token_encoder": count_parameters(bilm.token_encoder),
                       "lstm": count_parameters(bilm.lstm)},
        "sizes": {
            "char_filters": opts.char_cnn.n_filters, "highway_layers": opts.char_cnn.n_highway,
            "lstm_dim": opts.lstm.dim, "projection_dim": opts.lstm.projection_dim, "lstm_layers": opts.lstm.n_layers,
            "output_layers": opts.n_output_layers, "output_width": opts.output_dim,
        },
        "files": {f.name: f.stat().st_size for f in files},
        "listener_width": opts.output_dim,
        "digest": array_digest(bilm),
    }


def convert(weights: PathLike, output: PathLike, options: Optional[PathLike] = None) -> Dict[str, Any]:
    """Write the biLM ``weights`` (any family) as a native directory ``output``; return its description.

    The directory is read back and must give the same arrays (digest) as the hdf5 file.
    """
    weights, output = existing(weights, "biLM weight file or folder"), Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"The output {output} is a file: give a directory for the native biLM")
    if weights.is_file() and weights.suffix.lower() != ".zip":
        options_path = Path(options) if options is not None else find_options(weights)
        bilm = load_hdf5(options_path, weights)
    else:  # an NLPL zip or folder, an ELMoForManyLangs folder, a native directory
        bilm = load_with_family(weights, options)[0]
    save_native(bilm, output)
    info = describe(output)
    if info["digest"] != array_digest(bilm):
        raise ValueError(f"{output}: the written biLM does not read back as {weights} (disk full?)")
    return info
