"""Raw text in, token sequences out: plain text, JSONL (``text`` or ``tokens`` field) or ``.spacy`` files, read in chunks.

Input is read in bounded chunks whose start is a byte offset (a Doc index for ``.spacy`` files), so a run can
stop anywhere and resume by seeking. Bad lines never stop a run: blank lines, undecodable or binary lines
and malformed JSON are skipped, over-long lines are cut, and :class:`CorpusStats` counts each case. A file
with no usable text at all is an error that names it.
"""
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..files import existing

JSONL_SUFFIXES = (".jsonl",)
SPACY_SUFFIXES = (".spacy",)
MAX_LINE_BYTES = 100_000
HELDOUT_BUCKETS = 100_000
READABLE = {"bad_json": "bad JSON records (not JSON, or no string 'text' / list-of-strings 'tokens')"}

Item = Union[str, List[str]]  # raw text to tokenise, or the words of a ``.spacy`` Doc


@dataclass
class CorpusStats:
    """What a pass over the input kept and skipped."""

    lines: int = 0
    blank: int = 0
    undecodable: int = 0
    binary: int = 0
    bad_json: int = 0
    cut: int = 0
    skipped_by_file: Dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return self.blank + self.undecodable + self.binary + self.bad_json

    def skip(self, path: Path, reason: str) -> None:
        setattr(self, reason, getattr(self, reason) + 1)
        self.skipped_by_file[str(path)] = self.skipped_by_file.get(str(path), 0) + 1

    def summary(self) -> str:
        parts = [f"{self.lines} lines used"]
        for name in ("blank", "undecodable", "binary", "bad_json"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {READABLE.get(name, name)} skipped")
        if self.cut:
            parts.append(f"{self.cut} over-long cut to {MAX_LINE_BYTES} bytes")
        return ", ".join(parts)


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in SPACY_SUFFIXES:
        return "spacy"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "text"


def check_paths(paths: Sequence[Union[str, Path]]) -> List[Path]:
    """Expand directories (sorted) and check that every file exists and is not empty."""
    files: List[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise ValueError(f"Input directory {path} contains no files")
            files.extend(found)
        else:
            files.append(existing(path, "Input file"))  # a link loop or broken link is named as such
    if not files:
        raise ValueError("No input files given")
    for path in files:
        if path.stat().st_size == 0:
            raise ValueError(f"Input file {path} is empty")
    return files


def _decode(data: bytes, path: Path, stats: CorpusStats, cut: bool) -> Optional[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if not (cut and err.start >= len(data) - 3):  # a cut line may end inside a character
            stats.skip(path, "undecodable")
            return None
        text = data[: err.start].decode("utf-8", "replace")
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        stats.skip(path, "binary")
        return None
    text = text.strip()
    if not text:
        stats.skip(path, "blank")
        return None
    return text


def _read_lines(
    path: Path, offset: int, stats: CorpusStats, max_lines: Optional[int] = None
) -> Iterator[Tuple[int, str]]:
    """``(offset of the next line, text)`` for every usable line from ``offset`` on (the next ``max_lines``
    lines, used or skipped, when given)."""
    for after, text in _every_line(path, offset, stats, max_lines):
        if text is not None:
            yield after, text


def _every_line(
    path: Path, offset: int, stats: CorpusStats, max_lines: Optional[int] = None
) -> Iterator[Tuple[int, Optional[str]]]:
    """As :func:`_read_lines`, with ``None`` for each line skipped (counted in ``stats``)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        n_read = 0
        while max_lines is None or n_read < max_lines:
            data = handle.readline(MAX_LINE_BYTES + 1)
            if not data:
                return
            n_read += 1
            cut = len(data) > MAX_LINE_BYTES and not data.endswith(b"\n")
            if cut:
                data = data[:MAX_LINE_BYTES]
                while True:  # drop the rest of the line, a bounded piece at a time
                    rest = handle.readline(MAX_LINE_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
                stats.cut += 1
            yield handle.tell(), _decode(data, path, stats, cut)


def _jsonl_item(line: str, path: Path, stats: CorpusStats) -> Optional[Item]:
    """A record's ``text`` (a string) or ``tokens`` (a list of strings, whitespace tokens dropped)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        stats.skip(path, "bad_json")
        return None
    # "text" must be a string and "tokens" a list of strings: a record with another type in its field is
    # malformed, like bad JSON (skipped and counted), and never read as the other kind of item
    item: Any = None
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        item = record["text"]
    elif isinstance(record, dict) and "text" not in record and isinstance(record.get("tokens"), list) \
            and all(isinstance(w, str) for w in record["tokens"]):
        item = [w for w in record["tokens"] if w and not w.isspace()]
    if item is None:
        stats.skip(path, "bad_json")
        return None
    if not item or (isinstance(item, str) and not item.strip()):
        stats.skip(path, "blank")
        return None
    return item


def _read_spacy(
    path: Path, offset: int, stats: CorpusStats, max_lines: Optional[int] = None
) -> Iterator[Tuple[int, List[str]]]:
    """The words of each Doc from ``offset`` on, read from the file's ORTH column and strings: no ``Doc``
    is built, so a chunk costs the file's load, not a decoding of every Doc."""
    from spacy.attrs import ORTH
    from spacy.strings import StringStore
    from spacy.tokens import DocBin

    def unreadable(err: Exception) -> ValueError:
        return ValueError(f"Input file {path} is not a readable .spacy file: {err}")

    try:  # DocBin raises several types on corrupt files; ValueError: no ORTH column
        doc_bin = DocBin().from_disk(path)
        strings = StringStore(doc_bin.strings)
        column = doc_bin.attrs.index(ORTH)
    except Exception as err:
        raise unreadable(err) from err
    end = len(doc_bin.tokens) if max_lines is None else min(len(doc_bin.tokens), offset + max_lines)
    for index in range(offset, end):
        try:
            words = [strings[orth] for orth in doc_bin.tokens[index][:, column].tolist()]
        except (KeyError, IndexError) as err:
            raise unreadable(err) from err
        words = [w for w in words if not w.isspace()]  # spaCy's Token.is_space
        if words:
            stats.lines += 1
            yield index + 1, words
        else:
            stats.skip(path, "blank")


def read_items(
    path: Path, offset: int, stats: CorpusStats, max_lines: Optional[int] = None
) -> Iterator[Tuple[int, Item]]:
    """``(position after the item, item)`` from ``offset`` on; ``offset`` is 0 for the start. With
    ``max_lines``, only the next ``max_lines`` lines (Docs of a ``.spacy`` file) are read."""
    kind = file_kind(path)
    if kind == "spacy":
        yield from _read_spacy(path, offset, stats, max_lines)
        return
    for after, item in every_item(path, offset, stats, max_lines):
        if item is not None:
            yield after, item


def every_item(
    path: Path, offset: int, stats: CorpusStats, max_lines: Optional[int] = None
) -> Iterator[Tuple[int, Optional[Item]]]:
    """As :func:`read_items` for a text or JSONL file, with ``None`` for each line skipped: a reader that
    must know where every line ends (the shard plan)."""
    kind = file_kind(path)
    for after, line in _every_line(path, offset, stats, max_lines):
        text = _jsonl_item(line, path, stats) if kind == "jsonl" and line is not None else line
        if text is not None:
            stats.lines += 1
        yield after, text


def numbered_items(
    path: Path, stats: CorpusStats, offset: int = 0, max_lines: Optional[int] = None, first_line: int = 1
) -> Iterator[Tuple[int, Item]]:
    """``(line number, item)`` for the usable items of :func:`read_items`, ``first_line`` being the number of
    the line (Doc) at ``offset``. Every line read is either used or counted as skipped in ``stats``, so the
    counts give each item's line number without reading the file again."""
    before = stats.lines + stats.skipped
    for _, item in read_items(path, offset, stats, max_lines):
        yield first_line + stats.lines + stats.skipped - before - 1, item


def item_key(item: Item) -> str:
    return item if isinstance(item, str) else " ".join(item)


def is_heldout(item: Item, fraction: float) -> bool:
    """A stable pseudo-random split: the same text always lands on the same side."""
    if fraction <= 0:
        return False
    bucket = zlib.crc32(item_key(item).encode("utf-8", "replace")) % HELDOUT_BUCKETS
    return bucket < fraction * HELDOUT_BUCKETS


class Tokenizer:
    """spaCy's tokenizer of a language (``spacy.blank(lang)``); whitespace tokens are dropped.

    Token sequences longer than ``max_length`` are cut into pieces of at most ``max_length``.
    """

    def __init__(self, lang: str, max_length: int) -> None:
        import spacy

        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        try:
            self.nlp = spacy.blank(lang)
        except Exception as err:  # spaCy raises ImportError or its own errors for unknown codes
            raise ValueError(f"Unknown spaCy language code {lang!r}: {err}") from err
        self.lang = lang
        self.max_length = max_length

    def __call__(self, items: Iterable[Item]) -> List[List[str]]:
        return [piece for pieces in self.pieces(items) for piece in pieces]

    def pieces(self, items: Iterable[Item]) -> List[List[List[str]]]:
        """Each item's token sequences (more than one where it is longer than ``max_length``)."""
        items = list(items)
        texts = [i for i in items if isinstance(i, str)]
        tokenizer: Any = self.nlp.tokenizer  # spaCy's compiled Tokenizer, untyped (typed as a callable)
        docs = iter(tokenizer.pipe(texts, batch_size=1000))
        out: List[List[List[str]]] = []
        for item in items:
            words = [t.text for t in next(docs) if not t.is_space] if isinstance(item, str) else item
            out.append([words[i : i + self.max_length] for i in range(0, len(words), self.max_length)])
        return out


def read_chunk(
    path: Path, offset: int, max_items: int, heldout: float, stats: CorpusStats
) -> Tuple[List[Item], int]:
    """Up to ``max_items`` training items (held-out ones left out) and the offset after them (-1 at the end)."""
    items: List[Item] = []
    after = -1
    for after, item in read_items(path, offset, stats):
        if not is_heldout(item, heldout):
            items.append(item)
        if len(items) >= max_items:
            return items, after
    return items, -1
