"""Shared pieces of the benchmarks: the fixed corpus, published-layout weight files, timing, peak RSS.

Weights are random (no downloads) and written with the independent writer of ``tests/reference_math.py``
in the bilm-tf / AllenNLP hdf5 layout, so ours and the reference read the very same file.
"""
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import reference_math as R  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "raw" / "wnut17_raw_minus_devtest.txt"
WORK = Path("/tmp/spacy_elmo_bench")
FULL_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
SIZES: Dict[str, dict] = {
    "tiny": R.options_dict(32, 16, 1, R.FILTERS_TINY, 4),
    "small": R.options_dict(1024, 128, 1, FULL_FILTERS, 16),
    "original": R.options_dict(4096, 512, 2, FULL_FILTERS, 16),
}


def weight_files(size: str) -> Tuple[Path, Path]:
    """``(options.json, weights.hdf5)`` for ``size``, written once under ``/tmp/spacy_elmo_bench``."""
    directory = WORK / size
    options, weights = directory / "options.json", directory / "weights.hdf5"
    if not weights.exists():
        R.write_published(directory, SIZES[size], R.random_published_arrays(SIZES[size], seed=0))
    return options, weights


def corpus_sentences(n_tokens: int = 20_000) -> List[List[str]]:
    """The first ``n_tokens`` spaCy tokens of the WNUT-17 raw text, split into sentences by spaCy's
    sentencizer (one line is one or more sentences); whitespace tokens dropped."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    sentences: List[List[str]] = []
    total = 0
    with CORPUS.open(encoding="utf8") as lines:
        for doc in nlp.pipe(line.strip() for line in lines if line.strip()):
            for sent in doc.sents:
                words = [t.text for t in sent if not t.is_space][: n_tokens - total]
                if words:
                    sentences.append(words)
                    total += len(words)
            if total >= n_tokens:
                return sentences
    return sentences


def corpus_texts(n_tokens: int = 20_000) -> List[str]:
    """The same text as :func:`corpus_sentences`, one sentence per string (for ``nlp.pipe``)."""
    return [" ".join(words) for words in corpus_sentences(n_tokens)]


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
