"""Token strings in, biLM layers out: token-budget batches sorted by length and a character-CNN cache."""
import threading
from typing import Callable, Dict, Hashable, List, Sequence, Tuple

import numpy
import torch

from .heap import HeapTrimmer
from .model import BiLM
from .precision import check_mode, current_mode, precision

_BOS, _EOS = 0, 1  # cache keys of the sentence marks: ints, so they never collide with token strings


class TokenVectorCache:
    """A bounded, exact map from token string to its character-CNN vector.

    Vectors live in one preallocated tensor; when it is full the cache starts afresh, and when the
    precision mode changes too. Only valid while the biLM's weights do not change: call :meth:`clear`
    after every update. Safe to share between threads: a lock covers every use of the store, since a
    refill by one thread would otherwise move the vectors another is reading.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.slots: Dict[Hashable, int] = {}
        self.store: torch.Tensor = torch.empty(0)
        self.mode = current_mode()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.slots = {}

    def absent(self, keys: Sequence[Hashable]) -> List[Hashable]:
        """The distinct ``keys`` not in the cache, as many as it has room for."""
        with self._lock:
            new = [k for k in dict.fromkeys(keys) if k not in self.slots]
            return new[: max(0, self.capacity - len(self.slots))]

    def lookup(self, bilm: BiLM, keys: Sequence[Hashable], device: torch.device) -> torch.Tensor:
        """``[len(keys), P]`` vectors, computing (and keeping, when there is room) the missing ones."""
        with self._lock:
            return self._lookup(bilm, keys, device)

    def _lookup(self, bilm: BiLM, keys: Sequence[Hashable], device: torch.device) -> torch.Tensor:
        width = bilm.options.lstm.projection_dim
        if self.store.shape != (self.capacity, width) or self.store.device != device:
            self.store = torch.empty(self.capacity, width, device=device)
            self.slots = {}
        if self.mode != current_mode():
            self.mode = current_mode()
            self.slots = {}
        missing = [k for k in keys if k not in self.slots]
        if len(self.slots) + len(missing) > self.capacity:
            self.slots = {}
            missing = list(keys)
        if len(missing) > self.capacity:
            return _encode(bilm, keys, device)
        if missing:
            start = len(self.slots)
            self.store[start : start + len(missing)] = _encode(bilm, missing, device)
            self.slots.update((k, start + i) for i, k in enumerate(missing))
        index = torch.tensor([self.slots[k] for k in keys], device=device)
        return self.store.index_select(0, index)


def _words(bilm: BiLM, keys: Sequence[Hashable]) -> List[str]:
    """The keys as the biLM's token strings: the int keys are its sentence marks."""
    marks = {_BOS: bilm.tokens.bos, _EOS: bilm.tokens.eos}
    return [k if isinstance(k, str) else marks[k] for k in keys]  # type: ignore[index]


def _encode(bilm: BiLM, keys: Sequence[Hashable], device: torch.device) -> torch.Tensor:
    return bilm.encode_words(_words(bilm, keys), device)


def plan_batches(lengths: Sequence[int], max_batch_tokens: int) -> List[List[int]]:
    """Group sequence indices, longest first, so that each batch's padded size fits the budget.

    A sequence longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: List[List[int]] = []
    for i in order:
        if lengths[i] == 0:
            continue
        padded = lengths[batches[-1][0]] + 2 if batches else 0  # +2: sentence marks
        if batches and padded * (len(batches[-1]) + 1) <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class Embedder:
    """Runs a :class:`BiLM` over tokenised sentences.

    Sentences are wrapped in the sentence marks, batched by a padded-token budget and sorted by length;
    the marks are dropped from what is returned. Outputs do not depend on batch-mates: the biLM is
    stateless and padding is masked.

    ``precision``: "exact" (float32, the default) or "fast" (bfloat16 products, inference only; see
    :mod:`.precision`). :meth:`embed` and :meth:`batch_layers` run in it.
    """

    def __init__(
        self, bilm: BiLM, max_batch_tokens: int = 4096, cache_size: int = 50_000, precision: str = "exact"
    ) -> None:
        self.bilm = bilm
        self.max_batch_tokens = max_batch_tokens
        self.cache = TokenVectorCache(cache_size)
        self.precision = check_mode(precision)
        self.heap = HeapTrimmer()  # a long run's freed batches go back to the system, so RSS stays flat

    @property
    def device(self) -> torch.device:
        return next(self.bilm.parameters()).device

    def batch_layers(self, sentences: Sequence[Sequence[str]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``([L, B, T, 2P], lengths)`` for one batch, sentence marks removed; differentiable when grad is on.

        The token-vector cache is used only when gradients are off.
        """
        with precision(self.precision):
            out = self._batch_layers(sentences)
        self.heap.batch_done()
        return out

    def _batch_layers(self, sentences: Sequence[Sequence[str]]) -> Tuple[torch.Tensor, torch.Tensor]:
        device = self.device
        keys: Dict[Hashable, int] = {_BOS: 0, _EOS: 1}
        rows = [[keys.setdefault(w, len(keys)) for w in sent] for sent in sentences]
        unique = list(keys)
        if torch.is_grad_enabled() or self.cache.capacity == 0:
            vectors = _encode(self.bilm, unique, device)
        else:
            vectors = self.cache.lookup(self.bilm, unique, device)
        steps = max(len(r) for r in rows) + 2
        index = numpy.full((len(rows), steps), 1, dtype=numpy.int64)  # pad with EOS: masked anyway
        index[:, 0] = 0
        for b, r in enumerate(rows):
            index[b, 1 : 1 + len(r)] = r
        lengths = torch.tensor([len(r) + 2 for r in rows])
        layers = self.bilm.contextualize(vectors[torch.from_numpy(index).to(device)], lengths)
        return layers[:, :, 1:-1], lengths - 2

    def warm_cache(self, words: Sequence[str]) -> None:
        """Compute the character-CNN vectors of ``words`` into the cache ahead of use (a vocabulary, or
        text seen before), as many as it has room for."""
        if self.cache.mode != self.precision:
            self.cache.clear()
        new = self.cache.absent(words)
        was_training = self.bilm.training
        self.bilm.eval()
        try:
            with torch.no_grad(), precision(self.precision):
                for start in range(0, len(new), self.max_batch_tokens):
                    self.cache.lookup(self.bilm, new[start : start + self.max_batch_tokens], self.device)
        finally:
            self.bilm.train(was_training)

    def embed(self, sentences: Sequence[Sequence[str]]) -> List[numpy.ndarray]:
        """One float32 ``[L, n_tokens, 2P]`` array per sentence (empty sentences give ``n_tokens = 0``)."""
        opts = self.bilm.options
        out: List[numpy.ndarray] = [
            numpy.zeros((opts.n_output_layers, 0, opts.output_dim), dtype=numpy.float32) for _ in sentences
        ]

        def keep(i: int, layers: numpy.ndarray) -> None:
            out[i] = numpy.ascontiguousarray(layers)

        self.embed_into(sentences, keep)
        return out

    def embed_into(self, sentences: Sequence[Sequence[str]], sink: Callable[[int, numpy.ndarray], None]) -> None:
        """Call ``sink(i, layers)`` with each non-empty sentence's ``[L, n_tokens, 2P]`` layers (a view into
        its batch, valid during the call) as batches finish, so that a caller can copy them into place and
        memory stays at one batch beyond the caller's arrays."""
        was_training = self.bilm.training
        self.bilm.eval()
        try:
            with torch.no_grad():
                for batch in plan_batches([len(s) for s in sentences], self.max_batch_tokens):
                    layers, lengths = self.batch_layers([sentences[i] for i in batch])
                    host = layers.float().cpu().numpy()
                    for b, i in enumerate(batch):
                        sink(i, host[:, b, : int(lengths[b])])
                    del layers, host  # not held while the next batch runs (on a GPU: not kept reserved twice)
        finally:
            self.bilm.train(was_training)
