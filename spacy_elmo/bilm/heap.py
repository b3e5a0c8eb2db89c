"""Freed memory handed back to the system, now and then, on glibc.

A long run frees every batch's activations, and glibc keeps the freed pages in its heap for later use. Batches of
other shapes fit those holes badly, so over millions of tokens the heap, and the process's RSS, creep upwards.
``malloc_trim(0)`` gives the free pages inside the heap back to the system. Every :data:`TRIM_EVERY` batches it
keeps a long run flat at no measurable cost; after every batch, the page faults of refilling those pages would
cost much of the speed (the soaks in ``benchmarks/RESULTS.md``). A no-op where the C library is not glibc.
"""
import ctypes
import sys
from typing import Callable, Optional

TRIM_EVERY = 32  # batches between two trims


def _find_malloc_trim() -> Optional[Callable[[int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


class HeapTrimmer:
    """Counts finished batches and trims the heap every :data:`TRIM_EVERY` of them."""

    def __init__(self, every: int = TRIM_EVERY) -> None:
        self.every = every
        self.batches = 0
        self.trims = 0

    def batch_done(self) -> None:
        self.batches += 1
        if self.batches % self.every == 0 and _malloc_trim is not None:
            _malloc_trim(0)
            self.trims += 1
