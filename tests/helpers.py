"""What several test modules use: tiny NER and textcat data, the shipped configs over it, training
steps, a synthetic corpus and settings for biLM pretraining, and the CLI output without its line wrapping."""
import os
from pathlib import Path
from typing import Dict, List, Sequence

import numpy
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import fix_random_seed, load_config

from spacy_elmo.pretraining import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "bilm_tiny.json"
CONFIGS = ROOT / "configs"
TINY_WIDTH = 32  # 2 * projection_dim of the tiny biLM in conftest

NER_DATA = [
    ("Alice lives in Paris .", [(0, 5, "PERSON"), (15, 20, "LOC")]),
    ("Bob works for Google in London .", [(0, 3, "PERSON"), (14, 20, "ORG"), (24, 30, "LOC")]),
    ("I met Carol at Microsoft yesterday", [(6, 11, "PERSON"), (15, 24, "ORG")]),
    ("Berlin is cold in winter", [(0, 6, "LOC")]),
    ("Dave and Erin flew to Tokyo", [(0, 4, "PERSON"), (9, 13, "PERSON"), (22, 27, "LOC")]),
    ("nothing to see here", []),
    ("Apple hired Frank", [(0, 5, "ORG"), (12, 17, "PERSON")]),
    ("We drove from Rome to Milan with Grace", [(14, 18, "LOC"), (22, 27, "LOC"), (33, 38, "PERSON")]),
]
CAT_DATA = [
    ("wake me up at seven", "alarm"), ("set an alarm for noon", "alarm"), ("alarm at six please", "alarm"),
    ("what is the weather today", "weather"), ("will it rain tomorrow", "weather"), ("is it sunny outside", "weather"),
    ("play some jazz", "music"), ("put on my playlist", "music"), ("play the next song", "music"),
]
LABELS = sorted({label for _, label in CAT_DATA})


def ner_docs(nlp) -> List[Doc]:
    docs = []
    for text, spans in NER_DATA:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in spans]
        docs.append(doc)
    return docs


def cat_docs(nlp) -> List[Doc]:
    docs = []
    for text, label in CAT_DATA:
        doc = nlp.make_doc(text)
        doc.cats = {other: float(other == label) for other in LABELS}
        docs.append(doc)
    return docs


def write_corpus(directory: Path, docs: Sequence[Doc]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "corpus.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


def task_config(name: str, directory: Path, tiny_files=None, overrides: Dict = None):
    """A shipped config over tiny data (and the tiny biLM for the ELMo configs)."""
    task = "ner" if name.startswith("ner") else "textcat"
    blank = spacy.blank("en")
    corpus = write_corpus(directory / "data", ner_docs(blank) if task == "ner" else cat_docs(blank))
    values = {"paths.train": str(corpus), "paths.dev": str(corpus), "training.seed": 0}
    if tiny_files is not None:
        options, weights = tiny_files
        values.update({
            "paths.elmo_weights": str(weights), "paths.elmo_options": str(options),
            f"components.{task}.model.tok2vec.elmo.width": TINY_WIDTH,
        })
    values.update(overrides or {})
    return load_config(CONFIGS / f"{name}.cfg", overrides=values)


def build(name: str, directory: Path, tiny_files=None, **overrides):
    fix_random_seed(0)
    return init_nlp(task_config(name, directory, tiny_files, overrides))


def examples_for(nlp) -> List[Example]:
    task = "ner" if "ner" in nlp.pipe_names else "textcat"
    gold = ner_docs(nlp) if task == "ner" else cat_docs(nlp)
    return [Example(nlp.make_doc(doc.text), doc) for doc in gold]


def listener_mix(nlp, task: str):
    return next(node for node in nlp.get_pipe(task).model.walk() if node.name == "elmo_scalar_mix")


def train_steps(nlp, n: int, exclude=(), annotates=()) -> List[float]:
    task = nlp.pipe_names[-1]
    examples = examples_for(nlp)
    optimizer = nlp.create_optimizer()
    history = []
    for _ in range(n):
        losses: Dict[str, float] = {}
        nlp.update(examples, sgd=optimizer, drop=0.0, losses=losses, exclude=list(exclude), annotates=list(annotates))
        history.append(losses[task])
    return history


GRAMMAR = [["the", "a"], ["big", "small", "red", ""], ["cat", "dog", "tree", "mat"], ["sat", "ran", "slept"],
           ["on", "under", "near"], ["the", "a"], ["mat", "tree", "roof"], [".", "!"]]


def synthetic_text(n_lines: int, seed: int = 0) -> str:
    """Sentences with structure a biLM can learn: determiner, adjective, noun, verb, preposition, ..."""
    rng = numpy.random.default_rng(seed)
    lines = [" ".join(w for slot in GRAMMAR if (w := slot[int(rng.integers(len(slot)))])) for _ in range(n_lines)]
    return "\n".join(lines) + "\n"


def synthetic_corpus(directory: Path, n_lines: int) -> Path:
    """A ``train.txt`` of :func:`synthetic_text` in ``directory``."""
    path = directory / "train.txt"
    path.write_text(synthetic_text(n_lines))
    return path


def subprocess_env() -> Dict[str, str]:
    """The environment of a test's subprocess: one thread, this checkout's package first."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def small_config(**overrides) -> PretrainConfig:
    """A few steps of the tiny biLM on a small batch: pretraining settings for tests."""
    settings = dict(max_steps=3, batch_tokens=256, max_length=30, vocab_size=100, min_count=1, warmup_steps=2,
                    heldout=0.05, eval_every=100, checkpoint_every=100, log_every=1, dropout=0.1)
    settings.update(overrides)
    return PretrainConfig(**settings)


def said(result) -> str:
    """CLI output with wasabi's line wrapping undone."""
    return " ".join(result.output.split())
