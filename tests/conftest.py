"""Shared fixtures: tiny biLMs written in the published layout, and pipelines over them."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import reference_math as R  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that sets torch's (process-wide) thread count leaves it as it found it, so that later tests
    run with the threads they expect (the two-thread LSTM pool needs at least 2)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_opts() -> dict:
    return R.options_dict(32, 16, 1, R.FILTERS_TINY, 4)


@pytest.fixture(scope="session")
def tiny_arrays(tiny_opts):
    return R.random_published_arrays(tiny_opts, seed=0)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory, tiny_opts, tiny_arrays):
    """``(options.json, weights.hdf5)`` of a tiny biLM in the published layout."""
    return R.write_published(tmp_path_factory.mktemp("tiny"), tiny_opts, tiny_arrays)


@pytest.fixture
def tiny_nlp(tiny_files):
    import spacy

    options, weights = tiny_files
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options)})
    return nlp
