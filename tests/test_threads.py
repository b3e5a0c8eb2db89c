"""One pipeline called from several threads at once (a web service) gives the single-thread output.

The caches are on and small, so that threads keep refilling the character-CNN cache and filling the Doc
cache while others read them; a tiny switch interval makes the interpreter interleave the threads often.
"""
import sys
import threading

import numpy
import pytest
import spacy

N_THREADS = 4
VOCABULARY = [f"w{i}" for i in range(300)]


def texts(n: int):
    rng = numpy.random.default_rng(0)
    return [" ".join(rng.choice(VOCABULARY, size=int(rng.integers(3, 12)))) for _ in range(n)]


def pipeline(tiny_files, cache_size: int, doc_cache_size: int):
    options, weights = tiny_files
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"weights": str(weights), "options": str(options),
                                 "model": {"cache_size": cache_size, "doc_cache_size": doc_cache_size}})
    return nlp


@pytest.fixture
def fast_switching():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.fixture
def lstm_pool_calls(monkeypatch):
    """torch's thread count when each biLSTM layer split its two directions (2 or more: over the pool)."""
    import torch

    from spacy_elmo.bilm import cpu_kernels

    torch.set_num_threads(2)  # restored by conftest's fixture
    calls = []
    both = cpu_kernels._both_directions

    def counted(run):
        calls.append(torch.get_num_threads())
        both(run)

    monkeypatch.setattr(cpu_kernels, "_both_directions", counted)
    return calls


@pytest.mark.parametrize("cache_size,doc_cache_size", [(64, 2000), (50_000, 0)])
def test_concurrent_calls_give_the_single_thread_layers(tiny_files, fast_switching, lstm_pool_calls, cache_size,
                                                        doc_cache_size):
    inputs = texts(160)
    reference = [doc._.elmo_data.layers for doc in pipeline(tiny_files, 0, 0).pipe(inputs, batch_size=8)]
    nlp = pipeline(tiny_files, cache_size, doc_cache_size)
    nlp("warm up")
    results = {}
    errors = []

    def work(k: int) -> None:
        try:
            for _ in range(2):  # the second round reads what the caches kept
                for i, doc in enumerate(nlp.pipe(inputs[k::N_THREADS], batch_size=4)):
                    results.setdefault(k + N_THREADS * i, []).append(doc._.elmo_data.layers)
        except Exception as err:  # reported below, with the thread's inputs
            errors.append(repr(err))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(N_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == list(range(len(inputs))) and all(len(r) == 2 for r in results.values())
    wrong = [i for i, outs in results.items() for out in outs if not numpy.allclose(out, reference[i], atol=1e-6)]
    assert wrong == []
    assert sum(n >= 2 for n in lstm_pool_calls) >= 10  # the concurrent callers went through the two-thread pool


def test_a_forked_child_starts_with_one_torch_thread_and_no_thread_pool():
    import os

    import torch

    from spacy_elmo.bilm import cpu_kernels

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cpu_kernels._both_directions(lambda direction: None)  # the parent's pool now exists
        assert len(cpu_kernels._POOL) == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once
            os.write(write, f"{torch.get_num_threads()} {len(cpu_kernels._POOL)}".encode())
            os._exit(0)
        os.close(write)
        report = os.read(read, 100).decode()
        os.waitpid(pid, 0)
        assert report == "1 0"
        assert torch.get_num_threads() == 2 and len(cpu_kernels._POOL) == 1  # the parent keeps its own
    finally:
        torch.set_num_threads(threads)
