"""Paths and files: checks of user-given paths whose errors say what is wrong with the path, not only that
it failed; and atomic files with ordinary permissions, written under a hidden temporary name beside the
target, flushed to disk, then renamed over it, so a reader (or a resumed run) sees a whole file or none."""
import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator, Union

TMP_MARK = ".tmp-"


def existing(path: Union[str, Path], what: str) -> Path:
    """``path`` if it names something that can be stat-ed; else an error naming ``what`` and the path.

    A missing path raises :class:`FileNotFoundError`; a broken or looping symbolic link and other failures
    raise :class:`ValueError` saying which (``Path.exists`` reports all of them as "not found").
    """
    path = Path(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ValueError(f"{what} {path} is a broken symbolic link (to {os.readlink(path)})") from None
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f"{what} {path} is a symbolic link loop") from None
        raise ValueError(f"{what} {path} cannot be accessed: {err.strerror}") from None
    return path


def existing_file(path: Union[str, Path], what: str) -> Path:
    """As :func:`existing`, and not a directory."""
    path = existing(path, what)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, not a file")
    return path


def temporary(path: Path) -> Path:
    """The hidden name ``path`` is written under. Files are created as ``open`` creates them (0666 less the
    umask), so other users, such as a service account, can read a shared model (``mkstemp`` gives 0600)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``path``."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write(path: Union[str, Path], write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then commit it over ``path``; an error names
    ``path``, not the temporary file, and leaves nothing behind."""
    path = Path(path)
    tmp = temporary(path)
    try:
        write(tmp)
        commit(tmp, path)
    except OSError as err:
        if err.filename in (str(tmp), tmp):
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8"))


def leftovers(directory: Path) -> Iterator[Path]:
    """Temporary files a killed run left behind."""
    if directory.is_dir():
        yield from (p for p in directory.iterdir() if p.name.startswith(".") and TMP_MARK in p.name)
