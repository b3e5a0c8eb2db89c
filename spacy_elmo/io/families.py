"""The one door for model files: which family a path is, recognised by its files, and its loader.

* ``published``: an hdf5 file (bilm-tf / AllenNLP layout) with its ``options.json`` (given, or beside it);
* ``nlpl``: the NLPL repository's bilm-tf models, a ``.zip`` as downloaded or its extracted folder
  (``model.hdf5`` + ``options.json``, often ``vocab.txt(.gz)`` and ``meta.json``);
* ``elmoformanylangs``: an ELMoForManyLangs folder (or an NLPL zip of one), see :mod:`.efml`;
* ``native``: spacy-elmo's directory (``options.json`` + ``weights.pt``, ``tokens.json`` when needed).
"""
import dataclasses
import gzip
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union, cast

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..files import existing
from . import efml
from .hdf5 import load_hdf5
from .native import OPTIONS_FILE, WEIGHTS_FILE, load_native

PathLike = Union[str, Path]
META_FILE = "meta.json"
VOCAB_FILES = ("vocab.txt", "vocab.txt.gz")
HDF5_SUFFIXES = (".hdf5", ".h5")
# NLPL's meta.json names languages by ISO 639-3 codes; spaCy by ISO 639-1 where one exists
_ISO3 = {
    "eng": "en", "rus": "ru", "nob": "nb", "nor": "nb", "nno": "nn", "swe": "sv", "deu": "de", "ger": "de",
    "lat": "la", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl", "dut": "nl",
    "pol": "pl", "ces": "cs", "cze": "cs", "fin": "fi", "dan": "da", "est": "et", "lav": "lv", "lit": "lt",
    "ukr": "uk", "bul": "bg", "hrv": "hr", "slv": "sl", "slk": "sk", "hun": "hu", "tur": "tr", "ara": "ar",
    "heb": "he", "fas": "fa", "per": "fa", "hin": "hi", "urd": "ur", "jpn": "ja", "kor": "ko", "zho": "zh",
    "chi": "zh", "vie": "vi", "ind": "id", "eus": "eu", "baq": "eu", "cat": "ca", "glg": "gl", "ell": "el",
    "gre": "el", "gle": "ga", "ron": "ro", "rum": "ro", "uig": "ug", "isl": "is",
}
FAMILIES = (
    "published hdf5 + options.json",
    "NLPL zip or folder (model.hdf5 + options.json)",
    f"ELMoForManyLangs folder ({', '.join(efml.REQUIRED)})",
    f"native directory ({OPTIONS_FILE} + {WEIGHTS_FILE})",
)


def family_of(path: Path) -> str:
    """``published``, ``nlpl``, ``elmoformanylangs``, ``native`` or ``zip`` (not yet opened); a one-line
    error naming what is missing when the files fit no family."""
    if path.is_file():
        if path.suffix.lower() == ".zip":
            return "zip"
        return "published"
    if efml.is_efml_folder(path):
        return "elmoformanylangs"
    if (path / WEIGHTS_FILE).exists():
        return "native"
    if _hdf5_in(path) is not None:
        return "nlpl"
    if _zip_in(path) is not None:  # a folder holding the zip as downloaded (project assets)
        return "zip"
    found = sorted(p.name for p in path.iterdir())[:8]
    raise ValueError(
        f"{path}: not a biLM model folder: expected one of: {'; '.join(FAMILIES)}; found {found or 'nothing'}"
    )


def _hdf5_in(folder: Path) -> Optional[Path]:
    if (folder / "model.hdf5").is_file():
        return folder / "model.hdf5"
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in HDF5_SUFFIXES and p.is_file())
    return found[0] if len(found) == 1 else None


def _zip_in(folder: Path) -> Optional[Path]:
    found = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return found[0] if len(found) == 1 and found[0].suffix.lower() == ".zip" and found[0].is_file() else None


def _archive(path: Path) -> Path:
    return path if path.is_file() else cast(Path, _zip_in(path))


def language_of(folder: Path) -> Optional[str]:
    """The language NLPL's ``meta.json`` gives (spaCy's code where one is known), or None."""
    meta = folder / META_FILE
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_bytes().decode("utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta}: not valid UTF-8 JSON: {err}") from err
    candidates = [data.get("language")] if isinstance(data, dict) else []
    corpora = data.get("corpus") if isinstance(data, dict) else None
    for corpus in corpora if isinstance(corpora, list) else []:
        if isinstance(corpus, dict):
            candidates.append(corpus.get("language"))
    for code in candidates:
        if isinstance(code, str) and code:
            return _ISO3.get(code.lower(), code.lower())
    return None


def vocabulary_of(folder: Path, limit: Optional[int] = None) -> List[str]:
    """The words of an NLPL model's ``vocab.txt(.gz)`` (one per line, most frequent first), to warm the
    character-CNN cache; empty when the folder has none."""
    for name in VOCAB_FILES:
        path = folder / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf8", errors="replace") as lines:
                words = []
                for line in lines:
                    word = line.rstrip("\n").split("\t")[0].strip()
                    if word and word not in ("<S>", "</S>", "<UNK>"):
                        words.append(word)
                    if limit is not None and len(words) >= limit:
                        break
                return words
    return []


def with_language(bilm: BiLM, language: Optional[str]) -> BiLM:
    if language:
        bilm.options = dataclasses.replace(bilm.options, extra={**bilm.options.extra, "language": language})
    return bilm


def model_language(bilm: BiLM) -> Optional[str]:
    """The language the model's files declare (NLPL meta.json), or None."""
    value = bilm.options.extra.get("language")
    return value if isinstance(value, str) else None


def _model_root(folder: Path) -> Path:
    """The folder inside an extracted zip that holds the model: the top, or a folder inside it."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return _model_root(entries[0])
    for candidate in [folder, *sorted(p for p in entries if p.is_dir())]:
        try:
            family_of(candidate)
            return candidate
        except ValueError:
            continue
    return folder


def _load_folder(path: Path, options: Optional[Path], top: Optional[Path] = None) -> Tuple[BiLM, str]:
    family = family_of(path)
    language = language_of(path) or (language_of(top) if top is not None else None)
    if family == "elmoformanylangs":
        return efml.load_efml(path, language), family
    if family == "native":
        return load_native(path), family
    hdf5 = _hdf5_in(path)
    assert hdf5 is not None
    opts = options or path / OPTIONS_FILE
    if not opts.is_file():
        raise ValueError(f"{path}: an NLPL model folder needs {OPTIONS_FILE} beside {hdf5.name}; missing")
    return with_language(load_hdf5(opts, hdf5), language), family


def load_with_family(weights: PathLike, options: Optional[PathLike] = None) -> Tuple[BiLM, str]:
    """``(biLM, family)`` from any path :data:`FAMILIES` lists."""
    path = existing(weights, "ELMo weights")
    opts = None if options is None else Path(options)
    family = family_of(path)
    if family == "zip":
        return _load_zip(_archive(path), opts)
    if family == "published":
        if opts is None:
            beside = path.parent / OPTIONS_FILE
            if not beside.is_file():
                raise ValueError(f"{path}: a published hdf5 weight file needs its options.json (options=..., or one beside it)")
            opts = beside
        return with_language(load_hdf5(opts, path), language_of(path.parent)), family
    return _load_folder(path, opts)


def _load_zip(path: Path, options: Optional[Path]) -> Tuple[BiLM, str]:
    """An NLPL zip as downloaded: extracted to a temporary folder (zipfile keeps names inside it), loaded,
    removed; the biLM is then in memory."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a readable zip archive: {err}") from err
    with archive, tempfile.TemporaryDirectory(prefix="spacy-elmo-zip-") as tmp:
        try:
            archive.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"{path}: cannot extract the zip archive (truncated?): {err}") from err
        root = _model_root(Path(tmp))
        try:
            bilm, family = _load_folder(root, options, Path(tmp))
        except ValueError as err:
            raise ValueError(f"{path} (zip): {str(err).replace(str(root), '<zip>')}") from err
        return bilm, "nlpl" if family in ("nlpl", "native") else f"{family} (zip)"


def model_options(weights: PathLike, options: Optional[PathLike] = None) -> BiLMOptions:
    """The options (shapes) of a model of any family, without reading its weights."""
    path = existing(weights, "ELMo weights")
    family = family_of(path)
    if family == "zip":
        with zipfile.ZipFile(_archive(path)) as archive:
            names = {Path(n).name: n for n in archive.namelist()}
            if efml.CONFIG_FILE in names and efml.CHAR_DIC in names:  # small files: read the folder's way
                with tempfile.TemporaryDirectory() as tmp:
                    wanted = [n for n in archive.namelist() if not n.endswith(".pkl") and not n.endswith("/")]
                    archive.extractall(tmp, members=wanted)
                    root = Path(tmp) / Path(names[efml.CONFIG_FILE]).parent
                    return efml.options_from_architecture(*efml.architecture(root))[0]
            if options is None and OPTIONS_FILE in names:
                return _options_from_bytes(archive.read(names[OPTIONS_FILE]), f"{path}:{names[OPTIONS_FILE]}")
    if family == "elmoformanylangs":
        return efml.options_from_architecture(*efml.architecture(path))[0]
    if options is not None:
        return BiLMOptions.from_file(options)
    folder = path if path.is_dir() else path.parent
    return BiLMOptions.from_file(folder / OPTIONS_FILE)


def _options_from_bytes(data: bytes, source: str) -> BiLMOptions:
    try:
        return BiLMOptions.from_dict(json.loads(data))
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err


def load_bilm(weights: PathLike, options: Optional[PathLike] = None) -> BiLM:
    """Load a biLM of any family (see :data:`FAMILIES`), recognised by its files."""
    return load_with_family(weights, options)[0]


def extract_vocabulary(weights: PathLike, limit: Optional[int] = None) -> List[str]:
    """The NLPL ``vocab.txt(.gz)`` words of a model folder or zip (empty when it has none)."""
    path = Path(weights)
    if path.is_dir():
        return vocabulary_of(path, limit)
    if path.suffix.lower() == ".zip" and path.is_file():
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            names: Dict[str, str] = {Path(n).name: n for n in archive.namelist()}
            for name in VOCAB_FILES:
                if name in names:
                    archive.extract(names[name], tmp)
                    return vocabulary_of((Path(tmp) / names[name]).parent, limit)
    return vocabulary_of(path.parent, limit) if path.is_file() else []


__all__ = ["load_bilm", "load_with_family", "model_options", "family_of", "model_language", "extract_vocabulary", "FAMILIES"]
