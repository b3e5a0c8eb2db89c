"""Checks of user-given paths whose errors say what is wrong with the path, not only that it failed."""
import errno
import os
from pathlib import Path
from typing import Union


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
