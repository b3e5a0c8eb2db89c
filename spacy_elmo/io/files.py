"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os
import uuid
from pathlib import Path
from typing import Union


def write_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, flush it to disk, then move it over ``path``.

    The file is created with mode 0666 less the umask, as ``open`` would create it (``tempfile``'s
    0600 would keep other users, such as a service account, from reading a shared model).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
