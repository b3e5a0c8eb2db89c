"""The GPU check: one command that exercises every GPU path of spacy-elmo and writes every figure to one JSON file.

    bash benchmarks/gpu_check.sh                                   # on the device machine (installs .whl/ first)
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check   # here: the same parts, small

Parts, each run whatever happened before it, each recorded as ``{"status": "ok" | "failed" | "skipped",
"seconds", "error"?, ...figures}`` and the JSON rewritten after each one (a killed run keeps what it had):

- ``env``: versions, the GPU, which thinc ops ``spacy.require_gpu`` gives.
- ``tests``: the CUDA tests (``-k cuda``) and the component, listener, embed and pretraining tests, CUDA visible.
- ``bilm_<size>``: ``bench_bilm.py``'s measure on the chosen device for each size, mode and batch budget:
  tokens/s from a cold character-CNN cache, GPU peak memory, max abs difference from the CPU exact path on the
  same sentences; at budgets within ``lstm.GRAPH_TOKENS``, also with the LSTM's CUDA-graph switch on
  (``exact+graphs``, ``fast+graphs``: the first pass, which captures, and a second).
- ``pipe``: ``nlp.pipe`` with the ``elmo`` component (device "auto": the GPU when there is one).
- ``train``: ``spacy train configs/ner_elmo.cfg --gpu-id 0`` on a slice of WNUT-17.
- ``embed``: ``python -m spacy_elmo embed`` of about 100k tokens (10k with --quick).
- ``pretrain_bf16``: ``python -m spacy_elmo pretrain`` for 100 steps (10 with --quick), bfloat16 autocast.
- ``pretrain_torchrun``: the same under torchrun, one process; ``ddp_probe``: under torchrun, one process, a
  process group (nccl on GPU, gloo on CPU), an all-reduce and a DistributedDataParallel step of the biLM.

``--device cpu`` hides CUDA from this process and every command it starts (CUDA_VISIBLE_DEVICES=""), so that
"auto" means the CPU everywhere; CUDA-only figures then say "skipped: no CUDA". Text and training data come
from ``.whl/data`` (made by scripts/build_wheelhouse.sh, carried to the device) or else ``../shared/data``.
"""
import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CARRIED = ROOT / ".whl" / "data"
SHARED = ROOT.parent / "shared" / "data"
Figures = Dict[str, Any]


class Skip(Exception):
    """A part that cannot run here (no CUDA): recorded as "skipped: <why>", not as a failure."""


class PartFailed(Exception):
    """A part that failed with figures worth keeping (the runs that did work)."""

    def __init__(self, message: str, figures: "Figures") -> None:
        super().__init__(message)
        self.figures = figures


class Check:
    """The settings of one run, the data it reads, and the JSON it writes."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.quick: bool = args.quick
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.sizes: List[str] = args.sizes or (["tiny", "small"] if self.quick else ["small", "original"])
        self.model_size = "tiny" if self.quick else "small"  # of pipe, train, pretrain
        self.embed_size = "tiny" if self.quick else "original"
        self.results: Dict[str, Any] = {"command": sys.argv, "quick": self.quick, "device": self.device,
                                        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "parts": {}}

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=2, default=str))

    def run(self, name: str, part: Callable[["Check"], Figures]) -> None:
        start = time.perf_counter()
        record: Dict[str, Any]
        try:
            record = {"status": "ok", **part(self)}
        except Skip as why:
            record = {"status": f"skipped: {why}"}
        except PartFailed as err:
            record = {**err.figures, "status": "failed", "error": str(err)[-4000:]}
        except Exception as err:  # a part's failure is a figure: the next part runs
            record = {"status": "failed", "error": f"{type(err).__name__}: {err}"[-4000:],
                      "traceback": traceback.format_exc()[-4000:]}
        record["seconds"] = round(time.perf_counter() - start, 2)
        self.results["parts"][name] = record
        self.save()
        print(f"[gpu_check] {name}: {record['status']} ({record['seconds']} s)"
              + (f" {record['error'].splitlines()[0][:300]}" if "error" in record else ""), flush=True)

    # the data: carried with the tree, or beside the checkout

    def corpus(self) -> Path:
        """The raw text (a few hundred thousand tokens), as a plain file."""
        plain = self.work / "corpus.txt"
        if not plain.exists():
            if (CARRIED / "corpus.txt.gz").exists():
                plain.write_bytes(gzip.decompress((CARRIED / "corpus.txt.gz").read_bytes()))
            elif (SHARED / "raw" / "wnut17_raw_minus_devtest.txt").exists():
                plain.write_text("".join(_first_lines(SHARED / "raw" / "wnut17_raw_minus_devtest.txt", 30_000)))
            else:
                raise FileNotFoundError(f"no text: neither {CARRIED / 'corpus.txt.gz'} nor {SHARED / 'raw'} exists")
        return plain

    def text_of(self, n_tokens: int) -> Path:
        """The first lines of the corpus holding about ``n_tokens`` whitespace tokens, as a file."""
        path = self.work / f"text_{n_tokens}.txt"
        if not path.exists():
            lines, total = [], 0
            for line in self.corpus().read_text(encoding="utf8").splitlines():
                if line.strip():
                    lines.append(line)
                    total += len(line.split())
                    if total >= n_tokens:
                        break
            path.write_text("\n".join(lines) + "\n", encoding="utf8")
        return path

    def conll(self, name: str) -> Path:
        for path in (CARRIED / f"wnut17_{name}.conll", SHARED / "wnut17" / {"train": "wnut17train.conll",
                                                                                  "dev": "emerging.dev.conll"}[name]):
            if path.exists():
                return path
        raise FileNotFoundError(f"no WNUT-17 {name} file in {CARRIED} or {SHARED / 'wnut17'}")

    def command(self, cmd: List[str], timeout: float, cwd: Optional[Path] = None) -> str:
        """Run ``cmd``; its output, or an error holding the output's end."""
        done = subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        if done.returncode:
            raise RuntimeError(f"exit {done.returncode} from {' '.join(cmd[:6])} ...: {output[-3000:]}")
        return output


def _first_lines(path: Path, n: int) -> List[str]:
    with path.open(encoding="utf8") as f:
        return [line for _, line in zip(range(n), f)]


def _gpu_memory() -> Figures:
    import torch

    if not torch.cuda.is_available():
        return {"cuda_memory": "skipped: no CUDA"}
    return {"cuda_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "cuda_peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1)}


def part_env(check: Check) -> Figures:
    import numpy
    import spacy
    import thinc
    import torch

    figures: Figures = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                        "spacy": spacy.__version__, "thinc": thinc.__version__, "numpy": numpy.__version__,
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "packages": {}}
    for name in ("typer", "click", "pydantic", "h5py", "pyarrow", "pytest", "hypothesis", "cupy-cuda13x", "cupy-cuda12x"):
        try:
            figures["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    if check.cuda:
        props = torch.cuda.get_device_properties(0)
        figures.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 1e9, 1),
                       multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported())
        # the ops that `spacy train --gpu-id 0` gives the listener and NER: cupy's when present, else torch's
        probe = ("import spacy, thinc.api as t; spacy.require_gpu(0); print(type(t.get_current_ops()).__name__)")
        figures["thinc_ops_with_gpu"] = check.command([sys.executable, "-c", probe], 120).strip().splitlines()[-1]
    else:
        figures.update(gpu="skipped: no CUDA", thinc_ops_with_gpu="skipped: no CUDA")
    return figures


TEST_FILES = ["tests/test_component.py", "tests/test_listener.py", "tests/test_embed.py", "tests/test_pretrain.py"]
CUDA_TEST_FILES = ["tests/test_bilm_numerics.py", "tests/test_pretrain_precision.py", "tests/test_faults.py"]


def part_tests(check: Check) -> Figures:
    """The CUDA tests (skipped without CUDA) and the GPU-relevant test files; counts from pytest's junit XML."""
    import xml.etree.ElementTree as ET

    junit = check.work / "tests.xml"
    # with --quick, one file stands for the four (the whole set runs in CI and in the full check)
    files = ["tests/test_listener.py"] if check.quick else TEST_FILES
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           *CUDA_TEST_FILES, *files, "-k", "cuda or device or not (test_bilm_numerics or test_pretrain_precision or test_faults)"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=check.args.tests_timeout)
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    cuda_cases = [f"{case.get('classname')}::{case.get('name')}: "
                  + ("skipped" if case.find("skipped") is not None else "failed" if case.find("failure") is not None
                     or case.find("error") is not None else "passed")
                  for case in suite.iter("testcase") if "cuda" in (case.get("name") or "").lower()]
    figures: Figures = {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
                        "failed_tests": failed, "cuda_tests": cuda_cases, "exit_code": done.returncode,
                        "summary": (done.stdout.strip().splitlines() or [""])[-1]}
    if done.returncode not in (0, 5) or failed:
        raise RuntimeError(f"{len(failed)} failed: {failed[:10]}; {figures['summary']}; output end: {done.stdout[-2000:]}")
    return figures


def part_bilm(size: str) -> Callable[[Check], Figures]:
    def part(check: Check) -> Figures:
        import numpy
        import torch

        import common as C
        from spacy_elmo.bilm import Embedder
        from spacy_elmo.io import load_bilm

        options, weights = C.weight_files(size)
        n_tokens = check.args.bench_tokens or (3_000 if check.quick else 262_144)
        sentences = C.corpus_sentences(n_tokens)
        n_tokens = sum(map(len, sentences))
        # the CPU exact path on the first sentences: the yardstick of every device run
        ref_tokens = 300 if check.quick else 2_000
        n_ref = next((i + 1 for i, total in enumerate(numpy.cumsum([len(s) for s in sentences])) if total >= ref_tokens),
                     len(sentences))
        cpu = Embedder(load_bilm(weights, options).eval(), max_batch_tokens=4096, precision="exact")
        reference = cpu.embed(sentences[:n_ref])
        del cpu
        bilm = load_bilm(weights, options).eval().to(check.device)
        budgets = check.args.budgets or ([4096, 16384] if check.quick else [4096, 8192, 16384, 32768, 65536, 131072, 262144])
        runs: List[Figures] = []
        deadline = time.perf_counter() + check.args.bench_seconds
        from spacy_elmo.bilm.lstm import GRAPH_TOKENS

        for budget in budgets:
            # the CUDA-graph switch where it applies: batches within its padded-token limit
            graphs = ["exact+graphs", "fast+graphs"] if check.args.graphs and budget <= GRAPH_TOKENS else []
            for mode in ["exact", "fast", *graphs]:
                if time.perf_counter() > deadline:
                    runs.append({"mode": mode, "budget": budget, "status": "skipped: the part's time budget is spent"})
                    continue
                try:
                    runs.append({"mode": mode, "budget": budget, **_bilm_run(check, bilm, mode, budget, sentences, reference)})
                except Exception as err:  # out of memory at one budget says something; the next budgets run
                    runs.append({"mode": mode, "budget": budget, "status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]})
                if check.cuda:
                    torch.cuda.empty_cache()
                print(f"[gpu_check]   {size} {mode} budget {budget}: {runs[-1]}", flush=True)
        figures = {"tokens": n_tokens, "sentences": len(sentences), "compared_sentences": n_ref,
                   "compared_tokens": sum(len(s) for s in sentences[:n_ref]), "device": check.device, "runs": runs}
        failed = [f"{run['mode']} {run['budget']}: {run['error'][:300]}" for run in runs if run["status"] == "failed"]
        if failed:
            raise PartFailed(f"{len(failed)} of {len(runs)} runs failed: {failed}", figures)
        return figures

    return part


def _bilm_run(check: Check, bilm: Any, mode: str, budget: int, sentences: List[List[str]],
              reference: List[Any]) -> Figures:
    """One timed embedding of ``sentences`` from a cold character-CNN cache, after a warm-up on the compared
    ones. Mode ``<precision>+graphs``: the LSTM's CUDA-graph switch on (on a CPU, its fixed-shape loop on the
    plain path); a first pass captures the graphs of the shapes it meets (timed apart), a second is timed."""
    import contextlib

    import numpy
    import torch

    from spacy_elmo.bilm import Embedder, cpu_kernels
    from spacy_elmo.bilm.lstm import cuda_graphs

    precision, graphs = mode.split("+")[0], mode.endswith("+graphs")
    n_tokens = sum(map(len, sentences))
    figures: Figures = {"status": "ok"}
    with contextlib.ExitStack() as stack:
        if graphs:
            stack.enter_context(cuda_graphs())
            stack.enter_context(cpu_kernels.disabled())
        embedder = Embedder(bilm, max_batch_tokens=budget, precision=precision)
        embedder.embed(sentences[: len(reference)])  # warm-up: kernels, allocator, autotuning
        if graphs:
            embedder.cache.clear()
            start = time.perf_counter()
            embedder.embed(sentences)
            figures["first_pass_tokens_per_s"] = round(n_tokens / (time.perf_counter() - start))
        embedder.cache.clear()
        if check.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = embedder.embed(sentences)  # host arrays: the device is done when it returns
        seconds = time.perf_counter() - start
    diff = max(float(numpy.abs(a - b).max()) for a, b in zip(out, reference) if a.size)
    return {**figures, "tokens_per_s": round(n_tokens / seconds), "seconds": round(seconds, 3),
            "max_abs_diff_from_cpu_exact": diff, **_gpu_memory()}


def part_pipe(check: Check) -> Figures:
    import torch

    import common as C
    from bench_bilm import _pipe

    options, weights = C.weight_files(check.model_size)
    sentences = C.corpus_sentences(2_000 if check.quick else 20_000)
    figures: Figures = {"size": check.model_size}
    for mode in ("exact", "fast"):
        if check.cuda:
            torch.cuda.reset_peak_memory_stats()
        n_tokens, clear, run = _pipe(mode, options, weights, sentences)  # device "auto"
        clear()
        figures[f"{mode}_tokens_per_s"] = round(n_tokens / C.best_time(run, 1))
        figures[mode] = _gpu_memory()
    figures["tokens"] = n_tokens
    return figures


def part_train(check: Check) -> Figures:
    """``spacy train`` of the NER config on a slice of WNUT-17, the biLM and the listener on the GPU."""
    import common as C

    options, weights = C.weight_files(check.model_size)
    data = check.work / "ner"
    data.mkdir(exist_ok=True)
    convert = ROOT / "scripts" / "convert_wnut17.py"
    for name, limit in (("train", 100 if check.quick else 400), ("dev", 30 if check.quick else 100)):
        check.command([sys.executable, str(convert), str(check.conll(name)), str(data / f"{name}.spacy"),
                       "--limit", str(limit)], 120)
    width = 2 * C.SIZES[check.model_size]["lstm"]["projection_dim"]
    steps = 20 if check.quick else 200
    output = check.work / "ner_model"
    cmd = [sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "ner_elmo.cfg"), "--output", str(output),
           "--gpu-id", "0" if check.cuda else "-1", "--paths.train", str(data / "train.spacy"),
           "--paths.dev", str(data / "dev.spacy"), "--paths.elmo_weights", str(weights),
           "--paths.elmo_options", str(options), "--components.ner.model.tok2vec.elmo.width", str(width),
           "--training.max_steps", str(steps), "--training.eval_frequency", str(steps // 2)]
    start = time.perf_counter()
    log = check.command(cmd, check.args.train_timeout)
    seconds = time.perf_counter() - start
    meta = json.loads((output / "model-last" / "meta.json").read_text())
    return {"size": check.model_size, "steps": steps, "gpu_id": 0 if check.cuda else -1, "train_seconds": round(seconds, 1),
            "performance": meta.get("performance", {}), "log_end": log.strip().splitlines()[-3:]}


def part_embed(check: Check) -> Figures:
    import common as C

    options, weights = C.weight_files(check.embed_size)
    text = check.text_of(10_000 if check.quick else 100_000)
    figures: Figures = {"size": check.embed_size}
    for mode in ("exact", "fast"):
        output = check.work / f"embed_{mode}"
        cmd = [sys.executable, "-m", "spacy_elmo", "embed", str(text), "--weights", str(weights), "--options",
               str(options), "--output", str(output), "--precision", mode, "--device", check.device, "--batch-tokens", "16384"]
        shutil.rmtree(output, ignore_errors=True)
        start = time.perf_counter()
        check.command(cmd, check.args.step_timeout)
        seconds = time.perf_counter() - start
        manifest = json.loads((output / "manifest.json").read_text())
        figures[mode] = {"tokens": manifest["tokens"], "lines": manifest["rows"], "seconds_with_startup": round(seconds, 1),
                         "tokens_per_s_with_startup": round(manifest["tokens"] / seconds)}
    return figures


def _pretrain_cmd(check: Check, output: Path) -> List[str]:
    steps = 10 if check.quick else 100
    bilm = "bilm_tiny.json" if check.quick else "bilm_small.json"
    return ["pretrain", str(check.text_of(10_000 if check.quick else 100_000)), "--output", str(output),
            "--options", str(ROOT / "configs" / bilm), "--max-steps", str(steps), "--precision", "bfloat16",
            "--device", check.device, "--batch-tokens", "4096", "--eval-every", str(steps), "--checkpoint-every",
            str(steps), "--log-every", "10", "--vocab-size", "20000", "--dev-max-sequences", "200", "--overwrite"]


def _pretrain_figures(output: Path) -> Figures:
    summary = json.loads((output / "summary.json").read_text())
    seconds = summary["minutes"] * 60
    return {"steps": summary["step"], "tokens_seen": summary["tokens_seen"], "precision": summary["precision"],
            "train_seconds": round(seconds, 1), "tokens_per_s": round(summary["tokens_seen"] / seconds),
            "train": summary["train"], "dev": summary["dev"]}


def part_pretrain(check: Check) -> Figures:
    output = check.work / "pretrain"
    check.command([sys.executable, "-m", "spacy_elmo", *_pretrain_cmd(check, output)], check.args.step_timeout)
    return _pretrain_figures(output)


def _torchrun() -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]


def part_pretrain_torchrun(check: Check) -> Figures:
    output = check.work / "pretrain_torchrun"
    check.command([*_torchrun(), "--module", "spacy_elmo", *_pretrain_cmd(check, output)], check.args.step_timeout)
    # one process is world size 1: pretrain then joins no process group (ddp_probe does)
    return _pretrain_figures(output)


def part_ddp_probe(check: Check) -> Figures:
    out = check.command([*_torchrun(), str(Path(__file__)), "--ddp-probe"], check.args.step_timeout)
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def ddp_probe() -> None:
    """Inside torchrun: a process group (nccl on GPU), an all-reduce, and the gradient of the tiny biLM through
    DistributedDataParallel against the plain one (one process: they must agree)."""
    import numpy
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import common as C
    from spacy_elmo.bilm.characters import words_to_ids
    from spacy_elmo.io import load_bilm

    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    dist.init_process_group(backend)
    total = torch.ones(3, device=device)
    dist.all_reduce(total)
    options, weights = C.weight_files("tiny")
    sentences = [["A", "tiny", "sentence", "."], ["Two", "."]]
    ids = numpy.zeros((len(sentences), max(map(len, sentences)), 50), dtype=numpy.int64)
    for b, words in enumerate(sentences):
        ids[b, : len(words)] = words_to_ids(words)
    char_ids = torch.from_numpy(ids).to(device)
    grads = []
    for wrapped in (True, False):  # through DDP's forward (its hooks reduce the gradients), then plainly
        bilm = load_bilm(weights, options).to(device).train()
        model = DistributedDataParallel(bilm, device_ids=[device.index] if cuda else None) if wrapped else bilm
        (model(char_ids).float() ** 2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in bilm.parameters() if p.grad is not None]))
    dist.barrier()
    dist.destroy_process_group()
    print(json.dumps({"backend": backend, "world": int(os.environ.get("WORLD_SIZE", "1")),
                      "all_reduce": total.tolist(), "grad_norm": float(grads[0].norm()), "device": str(device),
                      "ddp_grad_max_abs_diff_from_plain": float((grads[0] - grads[1]).abs().max())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu hides CUDA from every part (CUDA_VISIBLE_DEVICES='')")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (for this CPU machine)")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/spacy_elmo_gpu_check/out"), help="folder of gpu_check.json (default $OUT)")
    parser.add_argument("--work", default="/tmp/spacy_elmo_gpu_check", help="scratch folder")
    parser.add_argument("--parts", nargs="+", default=None, help="run only these parts")
    parser.add_argument("--sizes", nargs="+", default=None, help="biLM sizes of the bilm parts")
    parser.add_argument("--budgets", nargs="+", type=int, default=None, help="batch budgets in padded tokens")
    parser.add_argument("--bench-tokens", type=int, default=0, help="tokens of each bilm run (0: 262,144; 3,000 quick)")
    parser.add_argument("--bench-seconds", type=float, default=100, help="time budget of each bilm part")
    parser.add_argument("--no-graphs", dest="graphs", action="store_false",
                        help="leave out the LSTM's CUDA-graph switch (measured on and off by default)")
    parser.add_argument("--tests-timeout", type=float, default=200)
    parser.add_argument("--train-timeout", type=float, default=150)
    parser.add_argument("--step-timeout", type=float, default=120, help="limit of each embed / pretrain command")
    parser.add_argument("--ddp-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: children inherit it too
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.path[:0] = [str(ROOT), str(HERE)]
    if args.ddp_probe:
        return ddp_probe()

    check = Check(args)
    import common as C

    C.CORPUS = check.corpus()  # the benchmarks' text, wherever it came from
    parts: Dict[str, Callable[[Check], Figures]] = {"env": part_env, "tests": part_tests}
    parts.update({f"bilm_{size}": part_bilm(size) for size in check.sizes})
    parts.update({"pipe": part_pipe, "train": part_train, "embed": part_embed, "pretrain_bf16": part_pretrain,
                  "pretrain_torchrun": part_pretrain_torchrun, "ddp_probe": part_ddp_probe})
    for name, part in parts.items():
        if args.parts is None or name in args.parts:
            check.run(name, part)
    check.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    check.save()
    statuses = {name: record["status"] for name, record in check.results["parts"].items()}
    print(json.dumps(statuses, indent=1))
    print(f"[gpu_check] wrote {check.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
