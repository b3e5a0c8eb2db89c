"""glibc's malloc, told to give large blocks back to the system.

glibc serves a block above its mmap threshold (128 KiB at start) with its own mapping, returned on
free; but each such free raises the threshold to the block's size, up to 32 MiB. After the first
batches, every activation of a batch (megabytes each) comes from the heap instead, where freed blocks
of one batch's sizes rarely fit the next batch's, and the heap, and each thread's arena, only grows:
hundreds of megabytes of the peak of a long run are such holes. A fixed threshold turns the dynamic
one off, so blocks of :data:`MMAP_THRESHOLD` and more are mapped and unmapped with their tensor. Small
blocks (a step of the LSTM) stay on the heap, where reuse is fast.

Process-wide, set once, and only where the user has not chosen (``MALLOC_MMAP_THRESHOLD_`` in the
environment wins); a no-op where the C library is not glibc.
"""
import ctypes
import os
import sys
import threading

MMAP_THRESHOLD = 4 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
_lock = threading.Lock()
_done = False


def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (once per process); whether it was set."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
        if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
            return False
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # musl and other C libraries
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
