"""Max abs difference of the biLM (exact and fast modes, on the CPU kernels and on the plain forwards) from
the independent float64 numpy maths of tests/reference_math.py, on random weights in the published layout
(tiny and small shapes).

    python benchmarks/exactness.py
"""
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_math as R  # noqa: E402

from spacy_elmo.bilm import Embedder, cpu_kernels  # noqa: E402
from spacy_elmo.io import load_bilm  # noqa: E402

FULL_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
SIZES = {"tiny": (32, 16, 1, R.FILTERS_TINY, 4), "small": (1024, 128, 1, FULL_FILTERS, 16)}
SENTENCES = [
    "They can't trust their friends .".split(),
    "He has a trust fund , says the Zürich bank 😀 .".split(),
    ["x" * 200, "é" * 30, "\ud800", "a"],
]


def main() -> None:
    if not cpu_kernels.BFLOAT16:
        print("(no oneDNN bfloat16 products on this CPU: fast mode runs the plain forwards on both routes)")
    for name, dims in SIZES.items():
        opts = R.options_dict(*dims)
        arrays = R.random_published_arrays(opts, seed=3)
        with tempfile.TemporaryDirectory() as tmp:
            options, weights = R.write_published(Path(tmp), opts, arrays)
            bilm = load_bilm(weights, options)
        want = [R.elmo_layers(arrays, opts, words) for words in SENTENCES]
        for route, switch in (("kernels", nullcontext), ("plain", cpu_kernels.disabled)):
            for mode in ("exact", "fast"):
                with switch():
                    got = Embedder(bilm, precision=mode).embed(SENTENCES)
                diff = max(float(numpy.abs(g - w).max()) for g, w in zip(got, want))
                print(f"{name:6s} {route:7s} {mode:6s} max abs difference from float64 maths: {diff:.2e}")


if __name__ == "__main__":
    main()
