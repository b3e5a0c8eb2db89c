"""Where the time goes, exact against fast: the character CNN's products, one LSTM step's pieces, and the
first layer's two ways of computing its input products.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_breakdown.py --size small --parts cnn step layer0

* ``cnn``: the character CNN over the corpus's distinct tokens (2 threads), best wall time and the
  torch profiler's time in oneDNN products, exact and fast.
* ``step``: one layer of one direction, ``--rows`` sequences, 1 thread (as each direction runs): the
  recurrent product, the elementwise cell update, the projection, and 4 steps' gates computed split (an
  input product for the 4 steps, then a recurrent product per step that adds it) against stacked (one
  product of ``[x_t; h]`` per step with a sigmoid post-op). ``--compile`` also times the elementwise
  update through ``torch.compile`` (needs a C++ compiler).
* ``layer0``: the warm LSTM through the ``Embedder``, with the token ids (first layer: input products
  once per distinct token) and without them (first layer stacked too), taking turns.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def per_call_us(run: Callable[[], object], calls: int = 100) -> float:
    for _ in range(10):
        run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1e6


def cnn(bilm, sentences, rounds: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from spacy_elmo.bilm.characters import words_to_ids
    from spacy_elmo.bilm.precision import precision

    torch.set_num_threads(2)
    words = list(dict.fromkeys(w for s in sentences for w in s))
    ids = torch.from_numpy(words_to_ids(words))
    with torch.no_grad():
        for mode in ("exact", "fast"):
            with precision(mode):
                seconds = C.best_time(lambda: bilm.encode_tokens(ids), rounds)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    bilm.encode_tokens(ids)
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events) / 1e3
            products = sum(e.self_cpu_time_total for e in events if "linear_pointwise" in e.key) / 1e3
            print(f"cnn   {mode:5} {len(words)} distinct tokens: {seconds:.3f} s; profiled {total:.0f} ms, "
                  f"of which oneDNN products {products:.0f} ms ({products / total:.0%})")


def step(bilm, rows: int, compile_cell: bool) -> None:
    import torch

    from spacy_elmo.bilm.lstm import cell_step
    from spacy_elmo.bilm.precision import linear, linear_add, pack

    torch.set_num_threads(1)
    layer = bilm.lstm.layers[1]
    dim, cells4 = layer.weight_ih.shape[1:]
    proj = layer.weight_hh.shape[1]
    cells = cells4 // 4
    with torch.no_grad():
        for dtype in (torch.float32, torch.bfloat16):
            w_ih, w_hh = pack(layer.weight_ih[0].t().to(dtype)), pack(layer.weight_hh[0].t().to(dtype))
            w_cat = pack(torch.cat([layer.weight_ih[0], layer.weight_hh[0]]).t().to(dtype))
            w_proj, bias = pack(layer.weight_proj[0].t().to(dtype)), layer.bias[0].to(dtype)
            x4, h = torch.randn(4 * rows, dim).to(dtype), torch.randn(rows, proj).to(dtype)
            gates = linear_add(h, w_hh, linear(x4[:rows], w_ih, bias))
            c, hidden = torch.randn(rows, cells), torch.empty(rows, cells, dtype=dtype)

            def split() -> None:
                gates_x = linear(x4, w_ih, bias)
                for k in range(4):
                    linear_add(h, w_hh, gates_x[k * rows : (k + 1) * rows]).sigmoid_()

            def stacked() -> None:
                for k in range(4):
                    linear(torch.cat([x4[k * rows : (k + 1) * rows], h], dim=1), w_cat, bias, sigmoid=True)

            def cell() -> None:
                cell_step(gates.clone().sigmoid_(), c.clone(), hidden, 3.0)

            copies = per_call_us(lambda: (gates.clone(), c.clone()))
            times: Dict[str, float] = {
                "recurrent product": per_call_us(lambda: linear_add(h, w_hh, gates)),
                "sigmoid + cell update": per_call_us(cell) - copies,
                "projection": per_call_us(lambda: linear(hidden, w_proj)),
                "4 steps split": per_call_us(split, 40),
                "4 steps stacked": per_call_us(stacked, 40),
            }
            if compile_cell:
                compiled = torch.compile(cell_step)
                times["sigmoid + cell update, compiled"] = per_call_us(
                    lambda: compiled(gates.clone().sigmoid_(), c.clone(), hidden, 3.0)) - copies
            name = "float32" if dtype == torch.float32 else "bfloat16"
            print(f"step  {name:8} {rows} rows, 1 thread: " + "; ".join(f"{k} {v:,.0f} us" for k, v in times.items()))


def layer0(embedder, sentences, rounds: int) -> None:
    import torch

    torch.set_num_threads(2)
    bilm = embedder.bilm
    with_ids = bilm.contextualize
    n_tokens = sum(len(s) for s in sentences)
    embedder.warm_cache([w for s in sentences for w in s])
    best: Dict[str, float] = {}
    for _ in range(rounds):
        for name in ("with token ids", "without"):
            # an instance attribute: the Embedder's call drops its token ids, so layer 0 runs stacked
            bilm.contextualize = with_ids if name == "with token ids" else (lambda v, n, types=None: with_ids(v, n))
            best[name] = min(best.get(name, float("inf")), C.best_time(lambda: embedder.embed(sentences), 1))
    bilm.contextualize = with_ids
    print("layer0 " + "; ".join(f"{k}: {v:.3f} s, {n_tokens / v:,.0f} tok/s" for k, v in best.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(C.SIZES), default="small")
    parser.add_argument("--parts", nargs="+", choices=("cnn", "step", "layer0"), default=["cnn", "step", "layer0"])
    parser.add_argument("--mode", choices=("exact", "fast"), default="exact", help="for layer0")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--sentences", type=int, default=0, help="only the first N sentences (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    from spacy_elmo.bilm import Embedder
    from spacy_elmo.io import load_bilm

    options, weights = C.weight_files(args.size)
    bilm = load_bilm(weights, options).eval()
    sentences = C.corpus_sentences()
    sentences = sentences[: args.sentences] if args.sentences else sentences
    print(f"{args.size}; load average {C.load_average()}")
    if "cnn" in args.parts:
        cnn(bilm, sentences, args.rounds)
    if "step" in args.parts:
        step(bilm, args.rows, args.compile)
    if "layer0" in args.parts:
        layer0(Embedder(bilm, precision=args.mode), sentences, args.rounds)


if __name__ == "__main__":
    main()
