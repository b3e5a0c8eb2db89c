"""Items (raw text, whitespace-tokenised text or words) to the tokens of a row and the pieces the biLM reads."""
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence

from spacy.tokens import Doc

from ..sequences import doc_sequences
from ..pretraining.corpus import Item


@dataclass
class Segmented:
    tokens: List[str]
    pieces: List[List[str]]  # consecutive, covering ``tokens``; each at most the window long


class Segmenter:
    """spaCy's tokenizer of ``lang``, or the saved pipeline ``model`` (which also sets sentence boundaries:
    each sentence is then read on its own), or whitespace splitting (``tokenized``). Whitespace tokens are
    dropped, as in pretraining; pieces are cut as the ``elmo`` component cuts a Doc (:func:`doc_sequences`).
    """

    def __init__(self, lang: str = "en", model: Optional[str] = None, tokenized: bool = False,
                 window: int = 128) -> None:
        import spacy

        if model:
            try:
                self.nlp = spacy.load(model)
            except OSError as err:
                raise ValueError(f"Cannot load the spaCy pipeline {model!r}: {err}") from err
        else:
            try:
                self.nlp = spacy.blank(lang)
            except Exception as err:  # spaCy raises ImportError or its own errors for unknown codes
                raise ValueError(f"Unknown spaCy language code {lang!r}: {err}") from err
        self.use_pipeline = bool(model)
        self.tokenized = tokenized
        self.window = window

    def _docs(self, items: Sequence[Item]) -> Iterable[Doc]:
        vocab = self.nlp.vocab
        if self.tokenized or not any(isinstance(i, str) for i in items):
            docs: Iterable[Doc] = [Doc(vocab, words=i.split() if isinstance(i, str) else list(i)) for i in items]
            return self.nlp.pipe(docs) if self.use_pipeline else docs
        inputs = [i if isinstance(i, str) else Doc(vocab, words=list(i)) for i in items]
        if self.use_pipeline:
            return self.nlp.pipe(inputs)
        tokenizer: Any = self.nlp.tokenizer  # spaCy types it as a plain callable; its Tokenizer has pipe()
        texts = iter(tokenizer.pipe([i for i in inputs if isinstance(i, str)], batch_size=1000))
        return [next(texts) if isinstance(i, str) else i for i in inputs]

    def count_tokens(self, items: Sequence[Item]) -> int:
        """How many tokens ``self(items)`` gives, from the tokenizer alone (a pipeline's other components set
        sentences, not tokens): the count behind the shard plan's size estimate and progress bar."""
        if self.tokenized:
            return sum(len(i.split()) if isinstance(i, str) else len(i) for i in items)
        tokenizer: Any = self.nlp.tokenizer
        texts = [i for i in items if isinstance(i, str)]
        words = sum(1 for doc in tokenizer.pipe(texts, batch_size=1000) for t in doc if not t.is_space)
        return words + sum(len([w for w in i if not w.isspace()]) for i in items if not isinstance(i, str))

    def __call__(self, items: Sequence[Item]) -> List[Segmented]:
        out: List[Segmented] = []
        for doc in self._docs(items):
            pieces = [[t.text for t in doc[start:end] if not t.is_space] for start, end in doc_sequences(doc, self.window)]
            pieces = [p for p in pieces if p]
            out.append(Segmented([w for p in pieces for w in p], pieces))
        return out
