"""What a biLM layer reads the text with (its settings) and keeps between calls (its caches)."""
import threading
from dataclasses import asdict, dataclass
from typing import Any, Dict, Hashable, Optional

import numpy
import torch

from ..bilm.embedder import Embedder
from ..bilm.model import BiLM
from ..bilm.precision import MODES
from ..devices import parse_device


@dataclass(frozen=True)
class BiLMSettings:
    """How the biLM layer reads Docs (the arguments of ``spacy-elmo.BiLM.v2``, which hold the defaults)."""

    window: int
    max_batch_tokens: int
    cache_size: int
    doc_cache_size: int
    device: str
    precision: str
    frozen: bool

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_batch_tokens < 1:
            raise ValueError(
                f"elmo: window and max_batch_tokens must be positive, got {self.window} and {self.max_batch_tokens}"
            )
        if self.cache_size < 0 or self.doc_cache_size < 0:
            raise ValueError(
                f"elmo: cache_size and doc_cache_size must be 0 (off) or positive, "
                f"got {self.cache_size} and {self.doc_cache_size}"
            )
        if self.precision not in MODES:
            raise ValueError(f"elmo: precision must be one of {MODES}, got {self.precision!r}")
        try:
            parse_device(self.device)
        except ValueError as err:
            raise ValueError(f"elmo: {err}") from None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "BiLMSettings":
        return cls(**data)

    @property
    def torch_device(self) -> torch.device:
        return parse_device(self.device)


class DocLayerCache:
    """The layers of Docs already seen, up to ``max_tokens`` tokens in all; once full it keeps what it has.

    Keeping the first Docs (rather than the most recent) suits training, which visits the same Docs in
    every epoch: a cache smaller than the corpus still saves its share of every epoch. Keys are the
    token strings of a Doc's sequences, so a hit is exact. The arrays are shared, so read-only. Only
    valid while the weights do not change. Safe to share between threads.
    """

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.n_tokens = 0
        self.entries: Dict[Hashable, numpy.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[numpy.ndarray]:
        with self._lock:
            return self.entries.get(key)

    def put(self, key: Hashable, layers: numpy.ndarray) -> None:
        n = layers.shape[1]
        with self._lock:
            if self.n_tokens + n > self.max_tokens or key in self.entries:
                return
            self.entries[key] = layers
            self.n_tokens += n


class BiLMRuntime:
    """The state one biLM and one set of settings derive: the :class:`Embedder` (with its character-CNN
    cache) and, for a frozen biLM, the Doc cache. Made afresh when either changes."""

    def __init__(self, bilm: BiLM, settings: BiLMSettings) -> None:
        self.bilm = bilm
        self.settings = settings
        self.embedder = Embedder(
            bilm, max_batch_tokens=settings.max_batch_tokens, cache_size=settings.cache_size,
            precision=settings.precision,
        )
        keep_docs = settings.frozen and settings.doc_cache_size > 0
        self.doc_cache: Optional[DocLayerCache] = DocLayerCache(settings.doc_cache_size) if keep_docs else None

    def weights_changed(self) -> None:
        """Forget what was computed with the old weights."""
        self.embedder.cache.clear()
        if self.doc_cache is not None:
            self.doc_cache = DocLayerCache(self.doc_cache.max_tokens)


class RuntimeSlot:
    """Holds a layer's :class:`BiLMRuntime` in its attrs. A copy of the layer (``Model.copy``, as
    ``replace_listeners`` makes) or a pickle gets an empty slot: its caches are its own."""

    def __init__(self) -> None:
        self.runtime: Optional[BiLMRuntime] = None

    def __reduce__(self):
        return (RuntimeSlot, ())
