"""Where the time goes, exact against fast: the character CNN's products and one LSTM step's pieces on the
CPU kernels, and a training step's forward and backward on the plain forwards.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_breakdown.py --size small --parts cnn step grad

* ``cnn``: the character CNN over the corpus's distinct tokens (2 threads), best wall time and the
  torch profiler's time in oneDNN products, exact and fast.
* ``step``: one layer of one direction, ``--rows`` sequences, 1 thread (as each direction runs): the
  recurrent product, the elementwise cell update, the projection, and 4 steps' gates computed split (an
  input product for the 4 steps, then a recurrent product per step that adds it) against stacked (one
  product of ``[x_t; h]`` per step with a sigmoid post-op). ``--compile`` also times the elementwise
  update through ``torch.compile`` (needs a C++ compiler).
* ``grad``: forward and backward of ``Embedder.batch_layers`` (what fine-tuning and pretraining run: the
  plain forwards, with autograd) over ``--grad-sentences`` sentences in batches of the default token
  budget, 2 threads; wall and CPU seconds. Uses only the public API, so it also runs on older commits.
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

    from spacy_elmo.bilm.cpu_kernels import BFLOAT16, cell_step, linear, pack

    def linear_add(x: "torch.Tensor", weight: "torch.Tensor", other: "torch.Tensor") -> "torch.Tensor":
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, None, "add")

    torch.set_num_threads(1)
    layer = bilm.lstm.layers[1]
    dim, cells4 = layer.weight_ih.shape[1:]
    proj = layer.weight_hh.shape[1]
    cells = cells4 // 4
    with torch.no_grad():
        for dtype in (torch.float32, torch.bfloat16) if BFLOAT16 else (torch.float32,):  # oneDNN bf16: AVX-512
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


def grad(embedder, sentences, rounds: int) -> None:
    import torch

    from spacy_elmo.bilm.embedder import plan_batches

    torch.set_num_threads(2)
    batches = [[sentences[i] for i in batch]
               for batch in plan_batches([len(s) for s in sentences], embedder.max_batch_tokens)]
    n_tokens = sum(len(s) for s in sentences)

    def run() -> None:
        for batch in batches:
            layers, _ = embedder.batch_layers(batch)
            layers.square().mean().backward()

    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    print(f"grad  {len(sentences)} sentences, {n_tokens} tokens, forward + backward: wall {best_wall:.3f} s "
          f"({n_tokens / best_wall:,.0f} tok/s), CPU {best_cpu:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(C.SIZES), default="small")
    parser.add_argument("--parts", nargs="+", choices=("cnn", "step", "grad"), default=["cnn", "step", "grad"])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--sentences", type=int, default=0, help="only the first N sentences (0: all)")
    parser.add_argument("--grad-sentences", type=int, default=200, help="sentences of the grad part")
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
    if "grad" in args.parts:
        grad(Embedder(load_bilm(weights, options).train()), sentences[: args.grad_sentences], args.rounds)


if __name__ == "__main__":
    main()
