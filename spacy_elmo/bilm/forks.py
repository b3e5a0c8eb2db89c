"""What a forked child process (``nlp.pipe(n_process=...)``) must not inherit from its parent.

The parent's OpenMP pool and Python thread pools do not survive ``fork``: a child that used them could
hang. The one hook below runs in every child forked after this module is imported: the child starts
with one torch thread (its workers run side by side, a core each) and forgets the thread pools that
were registered with :func:`on_fork`.
"""
import os
from typing import Callable, List

import torch

_RESETS: List[Callable[[], None]] = []


def on_fork(reset: Callable[[], None]) -> Callable[[], None]:
    """Call ``reset`` in every forked child, to drop state that belongs to the parent process."""
    _RESETS.append(reset)
    return reset


def _after_fork_in_child() -> None:
    torch.set_num_threads(1)
    for reset in _RESETS:
        reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
