"""A pretrained biLM's own scores as a language model: per-sentence log probabilities and perplexities in
each direction, and the most likely words at a position.

Uses: domain-shift checks (how surprised is the LM by this text?) and data filtering. The scores need the
LM head that ``pretrain`` saves beside the biLM; the published weight files have none.
"""
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch

from .batches import CharIdCache, length_groups, tensorize
from .corpus import Item, Tokenizer
from .lm import BiLMLanguageModel
from .trainer import load_lm
from .vocab import Vocab

DIRECTIONS = ("forward", "backward")


class _Perplexities:
    """The perplexities of summed log probabilities over ``n_targets`` targets per direction."""

    @property
    def fwd_log_prob(self) -> float:
        raise NotImplementedError

    @property
    def bwd_log_prob(self) -> float:
        raise NotImplementedError

    @property
    def n_targets(self) -> int:
        raise NotImplementedError

    @property
    def fwd_ppl(self) -> float:
        return math.exp(-self.fwd_log_prob / self.n_targets)

    @property
    def bwd_ppl(self) -> float:
        return math.exp(-self.bwd_log_prob / self.n_targets)

    @property
    def ppl(self) -> float:
        """The geometric mean of the two directions' perplexities, as ``evaluate`` reports it."""
        return math.exp(-(self.fwd_log_prob + self.bwd_log_prob) / (2 * self.n_targets))


@dataclass(frozen=True)
class SentenceScore(_Perplexities):
    """Natural-log probabilities of one token sequence under each direction of the LM.

    ``fwd_log_probs``: log p(token | the tokens before it) for each token, then for ``</S>``.
    ``bwd_log_probs``: log p(token | the tokens after it) for ``<S>``, then for each token.
    Tokens outside the LM's vocabulary are scored as ``<UNK>`` (``n_unknown`` of them).
    """

    tokens: List[str]
    fwd_log_probs: List[float]
    bwd_log_probs: List[float]
    n_unknown: int

    @property
    def n_targets(self) -> int:
        return len(self.fwd_log_probs)

    @property
    def n_sequences(self) -> int:
        """How many sequences were read: each has one target more than it has tokens."""
        return self.n_targets - len(self.tokens)

    @property
    def fwd_log_prob(self) -> float:
        return math.fsum(self.fwd_log_probs)

    @property
    def bwd_log_prob(self) -> float:
        return math.fsum(self.bwd_log_probs)

    @classmethod
    def join(cls, parts: Sequence["SentenceScore"]) -> "SentenceScore":
        """One score for a text read in several sequences (each with its own sentence marks)."""
        return cls([t for p in parts for t in p.tokens], [x for p in parts for x in p.fwd_log_probs],
                   [x for p in parts for x in p.bwd_log_probs], sum(p.n_unknown for p in parts))

    def to_dict(self, token_scores: bool = False) -> dict:
        out = {"tokens": self.tokens, "n_targets": self.n_targets, "n_unknown": self.n_unknown,
               "fwd_log_prob": self.fwd_log_prob, "bwd_log_prob": self.bwd_log_prob,
               "fwd_ppl": self.fwd_ppl, "bwd_ppl": self.bwd_ppl, "ppl": self.ppl}
        if token_scores:
            out.update(fwd_log_probs=self.fwd_log_probs, bwd_log_probs=self.bwd_log_probs)
        return out


@dataclass
class ScoreTotals(_Perplexities):
    """Running sums of many :class:`SentenceScore`, for a corpus too large to keep its scores."""

    fwd_log_prob: float = 0.0
    bwd_log_prob: float = 0.0
    n_targets: int = 0
    n_sequences: int = 0

    def add(self, score: SentenceScore) -> None:
        self.fwd_log_prob += score.fwd_log_prob
        self.bwd_log_prob += score.bwd_log_prob
        self.n_targets += score.n_targets
        self.n_sequences += score.n_sequences


class LMScorer:
    """Scores token sequences with a biLM and the LM head it was pretrained with (``pretrain``'s output)."""

    def __init__(self, lm: BiLMLanguageModel, vocab: Vocab, device: Union[str, torch.device] = "cpu",
                 batch_tokens: int = 4096) -> None:
        if batch_tokens < 1:
            raise ValueError(f"batch_tokens must be positive, got {batch_tokens}")
        self.device = torch.device(device)
        self.lm = lm.to(self.device).eval()
        self.vocab = vocab
        self.batch_tokens = batch_tokens
        self.chars = CharIdCache(lm.bilm.tokens)

    @classmethod
    def from_dir(cls, directory: Union[str, Path], device: Union[str, torch.device] = "cpu",
                 batch_tokens: int = 4096) -> "LMScorer":
        path = Path(directory)
        if path.is_file():
            raise ValueError(f"{path} is a weight file: the published biLMs have no LM head, so they cannot score "
                             "text; scores need the output directory of `python -m spacy_elmo pretrain`")
        lm, vocab, _ = load_lm(path)
        return cls(lm, vocab, device, batch_tokens)

    def score(self, sequences: Iterable[Sequence[str]]) -> List[SentenceScore]:
        """One :class:`SentenceScore` per sequence, in order; a sequence's scores do not depend on the
        others (every sequence starts from zero LSTM state)."""
        seqs = [list(s) for s in sequences]
        empty = [i for i, s in enumerate(seqs) if not s]
        if empty:
            raise ValueError(f"Sequence {empty[0]} is empty: there is nothing to score")
        scores: List[Optional[SentenceScore]] = [None] * len(seqs)
        lengths = [len(s) for s in seqs]
        order = sorted(range(len(seqs)), key=lengths.__getitem__)
        for group in length_groups(order, lengths, self.batch_tokens):
            batch = tensorize([seqs[i] for i in group], self.vocab, self.chars).to(self.device)
            with torch.no_grad():
                fwd, bwd = self.lm.target_log_probs(batch.char_ids, batch.index, batch.word_ids, batch.lengths)
            fwd_rows = fwd.double().cpu().split([len(seqs[i]) + 1 for i in group])
            bwd_rows = bwd.double().cpu().split([len(seqs[i]) + 1 for i in group])
            for i, f, b in zip(group, fwd_rows, bwd_rows):
                unknown = sum(1 for w in seqs[i] if w not in self.vocab.index)
                scores[i] = SentenceScore(seqs[i], f.tolist(), b.tolist(), unknown)
        return scores  # type: ignore[return-value]

    def predict(self, tokens: Sequence[str], position: int, k: int = 10,
                direction: str = "forward") -> List[Tuple[str, float]]:
        """The ``k`` most likely words, with probabilities, in slot ``position`` of ``tokens``.

        ``forward``: given the tokens before the slot (``position`` from 0 to ``len(tokens)``, the last one
        asking for what follows the sentence, ``</S>`` among the candidates). ``backward``: given the tokens
        after it (``position`` from -1, what precedes the sentence, to ``len(tokens) - 1``). The word at
        ``position`` itself, if any, is never seen by the direction that predicts it.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        low, high = (0, len(tokens)) if direction == "forward" else (-1, len(tokens) - 1)
        if not low <= position <= high:
            raise ValueError(f"{direction} position must be in {low}..{high} for {len(tokens)} tokens, got {position}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if not tokens:
            raise ValueError("tokens is empty: give at least one token of context")
        # With the sentence marks in, slot p is step p + 1: the forward state before it, the backward one after.
        batch = tensorize([list(tokens)], self.vocab, self.chars).to(self.device)
        with torch.no_grad():
            top = self.lm.top_states(batch.char_ids, batch.index, batch.lengths)[0]
            width = top.shape[-1] // 2
            state = top[position, :width] if direction == "forward" else top[position + 2, width:]
            log_probs = self.lm.softmax.log_prob(state.unsqueeze(0))[0]
        values, ids = log_probs.exp().topk(min(k, len(self.vocab)))
        return [(self.vocab.tokens[i], float(v)) for i, v in zip(ids.tolist(), values.tolist())]


def score_lines(
    scorer: LMScorer, tokenizer: Tokenizer, numbered: Iterable[Tuple[int, Item]], max_sequences: int = 0,
    chunk: int = 1000,
) -> Iterator[Tuple[int, SentenceScore]]:
    """``(line, score)`` for each ``(line, item)``, read ``chunk`` items at a time. An item longer than the
    tokenizer's ``max_length`` is scored in pieces, as in training, and its score joins them. With
    ``max_sequences``, stops after that many pieces."""
    left = max_sequences or -1
    items = iter(numbered)
    while left and (block := list(itertools.islice(items, chunk))):
        kept = []
        for (line, _), pieces in zip(block, tokenizer.pieces(item for _, item in block)):
            pieces = pieces[:left] if left > 0 else pieces
            kept.append((line, pieces))
            left -= len(pieces) if left > 0 else 0
            if not left:
                break
        scores = iter(scorer.score([piece for _, pieces in kept for piece in pieces]))
        for line, pieces in kept:
            yield line, SentenceScore.join([next(scores) for _ in pieces])
