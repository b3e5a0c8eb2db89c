"""The pretraining loop: Adam with warmup and linear decay, clipping, held-out perplexity, exact resume.

The output directory is a native biLM (``options.json`` + ``weights.pt``, usable as ``elmo``'s ``weights``)
plus the LM head (``vocab.jsonl``, ``lm_head.json``, ``lm_head.pt``), ``checkpoint.pt`` (everything a resume
needs: weights, optimiser, schedule, data position, every rank's RNG) and ``log.jsonl``.
"""
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from tqdm import tqdm

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..bilm.token_ids import token_ids_from_dict
from ..bilm.precision import native_bfloat16
from ..io import load_bilm, load_native, save_native
from . import distributed
from .batches import BatchStream, CharIdCache, Position, plan, shard, tensorize
from ..files import atomic_write
from .checkpoint import load_state, save_state
from .corpus import Tokenizer, check_paths
from .lm import BiLMLanguageModel
from .scan import scan, unigram_perplexity
from .softmax import default_cutoffs
from .vocab import FILE as VOCAB, LEGACY_FILE as LEGACY_VOCAB, SPECIALS, Vocab

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
SUMMARY = "summary.json"
HEAD_CONFIG = "lm_head.json"
HEAD_WEIGHTS = "lm_head.pt"
# "auto": bfloat16 autocast on a CUDA device that has bfloat16, float32 on the CPU (see autocast_dtype)
PRECISIONS = ("auto", "float32", "bfloat16")
# settings a resumed run must share with the run it continues
RUN_KEYS = ("lang", "vocab_size", "min_count", "batch_tokens", "max_length", "learning_rate", "warmup_steps",
            "final_lr", "dropout", "clip", "seed", "heldout", "dev_max_sequences")


@dataclass
class PretrainConfig:
    lang: str = "en"
    vocab_size: int = 50_000
    min_count: int = 2
    max_steps: int = 10_000
    batch_tokens: int = 4096
    max_length: int = 100
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    final_lr: float = 0.1
    dropout: float = 0.1
    clip: float = 1.0
    seed: int = 0
    heldout: float = 0.01
    dev_max_sequences: int = 2000
    eval_every: int = 500
    checkpoint_every: int = 200
    log_every: int = 10
    max_minutes: float = 0.0
    precision: str = "auto"

    def check(self) -> None:
        """Every setting in its range, before any text is read; errors name the setting and its value."""
        for name in ("max_steps", "eval_every", "checkpoint_every", "log_every", "max_length", "min_count",
                     "dev_max_sequences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.vocab_size < len(SPECIALS) + 1:
            raise ValueError(f"vocab_size must be at least {len(SPECIALS) + 1} (the special tokens and one more), "
                             f"got {self.vocab_size}")
        if self.batch_tokens < self.max_length + 2:
            raise ValueError(f"batch_tokens ({self.batch_tokens}) must hold one sequence of max_length + 2 tokens")
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise ValueError(f"learning_rate must be a number >= 0, got {self.learning_rate}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive number, got {self.clip}")
        if self.warmup_steps < 0 or not (self.max_minutes >= 0):
            raise ValueError(f"warmup_steps and max_minutes must be >= 0, got {self.warmup_steps} and {self.max_minutes}")
        if not 0.0 <= self.final_lr <= 1.0:
            raise ValueError(f"final_lr must be in [0, 1], got {self.final_lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("heldout", "dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def lr_factor(step: int, config: PretrainConfig, progress: float = 0.0) -> float:
    """Linear warmup to 1, then linear decay to ``final_lr`` at ``max_steps``, or sooner: ``progress``
    (the share of a ``max_minutes`` budget spent) moves the decay forward so that a time-limited run
    still ends annealed."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    done = max((step - config.warmup_steps) / span, progress)
    return max(config.final_lr, 1.0 - (1.0 - config.final_lr) * done)


def save_head(lm: BiLMLanguageModel, vocab: Vocab, lang: str, max_length: int, directory: Path) -> None:
    config = {"vocab_size": len(vocab), "cutoffs": lm.cutoffs, "lang": lang, "max_length": max_length}
    atomic_write(directory / VOCAB, vocab.to_file)
    (directory / LEGACY_VOCAB).unlink(missing_ok=True)  # one vocabulary per directory
    atomic_write(directory / HEAD_CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
    state = {k: v.detach().cpu() for k, v in lm.softmax.state_dict().items()}
    atomic_write(directory / HEAD_WEIGHTS, lambda tmp: torch.save(state, tmp))


def has_head(directory: Path) -> bool:
    has_vocab = (directory / VOCAB).exists() or (directory / LEGACY_VOCAB).exists()
    return has_vocab and all((directory / name).exists() for name in (HEAD_CONFIG, HEAD_WEIGHTS))


def load_lm(directory: Path) -> Tuple[BiLMLanguageModel, Vocab, Dict[str, Any]]:
    """A trained LM (biLM + head) from a pretrain output directory."""
    directory = Path(directory)
    if not has_head(directory):
        raise ValueError(f"{directory} has no LM head ({VOCAB}, {HEAD_CONFIG}, {HEAD_WEIGHTS}): not a pretrain output")
    bilm = load_native(directory)
    vocab = Vocab.from_directory(directory)
    config = read_head_config(directory)
    if config["vocab_size"] != len(vocab):
        raise ValueError(f"{directory}: {HEAD_CONFIG} says {config['vocab_size']} tokens, {VOCAB} has {len(vocab)}")
    lm = BiLMLanguageModel(bilm, len(vocab), config["cutoffs"])
    load_head_weights(lm, directory)
    return lm.eval(), vocab, config


def read_head_config(directory: Path) -> Dict[str, Any]:
    """``lm_head.json``, checked: its vocabulary size, softmax cutoffs, language and maximum length."""
    path = directory / HEAD_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf8"))
        size, cutoffs = config["vocab_size"], config["cutoffs"]
        if not (isinstance(config["lang"], str) and isinstance(config["max_length"], int)):
            raise ValueError(f"lang {config['lang']!r} must be a string, max_length {config['max_length']!r} a number")
        if not (isinstance(size, int) and all(isinstance(c, int) for c in cutoffs)
                and list(cutoffs) == sorted(set(cutoffs)) and all(0 < c < size for c in cutoffs)):
            raise ValueError(f"vocab_size {size!r} and cutoffs {cutoffs!r} do not fit: "
                             f"cutoffs must rise, each between 0 and the vocabulary size")
    except (ValueError, KeyError, TypeError) as err:
        detail = f"no {err}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"{path}: not an LM head description ({detail})") from None
    return config


def load_head_weights(lm: BiLMLanguageModel, directory: Path) -> None:
    """``lm_head.pt`` into ``lm``'s softmax; an error that names the file if it does not fit."""
    try:
        lm.softmax.load_state_dict(load_state(directory / HEAD_WEIGHTS))
    except RuntimeError as err:
        raise ValueError(f"{directory / HEAD_WEIGHTS} does not fit {HEAD_CONFIG} and {VOCAB}: {err}") from None


def evaluate(
    lm: BiLMLanguageModel, vocab: Vocab, sequences: Sequence[Sequence[str]], batch_tokens: int,
    device: torch.device, chars: Optional[CharIdCache] = None,
) -> Dict[str, float]:
    """Forward, backward and average (geometric mean) perplexity over ``sequences``, in float32 (the
    biLM's exact inference) whatever the training's precision."""
    chars = chars or CharIdCache(lm.bilm.tokens)
    totals = torch.zeros(2, dtype=torch.float64)
    n = 0
    was_training = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            for group in plan([list(s) for s in sequences if s], batch_tokens, numpy.random.default_rng(0)):
                batch = tensorize(group, vocab, chars).to(device)
                totals += lm(batch.char_ids, batch.index, batch.word_ids, batch.lengths).double().cpu()
                n += batch.n_targets
    finally:
        lm.train(was_training)
    if n == 0:
        raise ValueError("No text to evaluate")
    fwd, bwd = (totals / n).tolist()
    return {"fwd_ppl": math.exp(fwd), "bwd_ppl": math.exp(bwd), "ppl": math.exp((fwd + bwd) / 2), "tokens": n}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the training products: ``precision`` resolved for ``device``."""
    if precision == "auto":
        # not bfloat16 on CPUs, even those with AMX: at the shapes of a step-by-step LSTM torch's CPU autocast
        # spends on casts and small bfloat16 products what it saves, so CPU-sized biLMs train no faster with it;
        # larger ones gain (benchmarks/bench_pretrain.py), so --precision bfloat16 is a choice there
        return torch.bfloat16 if device.type == "cuda" and native_bfloat16(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def _autocast(dtype: torch.dtype, device: torch.device) -> torch.autocast:
    """Training's autocast: bfloat16 products where ``dtype`` is bfloat16 (the adaptive softmax and the
    LSTM cell state stay float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def _time_spent(started: float, deadline: float, ctx: distributed.Context) -> float:
    """Share of the time budget spent (0 without one), as the main process measures it, for all."""
    if deadline == math.inf:
        return 0.0
    budget = deadline - started  # 0 where the budget is below the clock's resolution: spent at once
    share = ((time.time() - started) / budget if budget > 0 else 1.0) if ctx.is_main else 0.0
    return float(distributed.all_sum(torch.tensor([share], dtype=torch.float64, device=ctx.device), ctx)[0])


def architecture_changes(old: BiLMOptions, new: BiLMOptions) -> List[str]:
    """``key: old -> new`` for every architecture setting that differs."""
    changes = []
    for section in ("char_cnn", "lstm"):
        before, after = dataclasses.asdict(getattr(old, section)), dataclasses.asdict(getattr(new, section))
        changes += [f"{section}.{k}: {before[k]} -> {after[k]}" for k in before if before[k] != after[k]]
    return changes


def _initial_model(
    options: Optional[BiLMOptions], init_weights: Optional[Path], init_options: Optional[Path]
) -> Tuple[BiLM, Optional[Path]]:
    """A fresh biLM from ``options``, or one loaded from ``init_weights`` (and the head's dir, if any)."""
    if init_weights is None:
        assert options is not None  # pretrain() asks for options or weights
        return BiLM(options), None
    bilm = load_bilm(init_weights, init_options)
    if options is not None and (options.char_cnn, options.lstm) != (bilm.options.char_cnn, bilm.options.lstm):
        raise ValueError(f"--options does not match the architecture of {init_weights}; leave it out to continue")
    head_dir = Path(init_weights) if Path(init_weights).is_dir() and has_head(Path(init_weights)) else None
    return bilm, head_dir


class _Log:
    """``log.jsonl``, appended by the main process; trimmed to the checkpoint's step on resume."""

    def __init__(self, path: Path, enabled: bool, keep_until: Optional[int]) -> None:
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if keep_until is None:
            path.write_text("")
        elif path.exists():
            kept = [l for l in path.read_text().splitlines() if l and json.loads(l)["step"] <= keep_until]
            atomic_write(path, lambda tmp: tmp.write_text("".join(l + "\n" for l in kept)))

    def write(self, record: Dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def pretrain(
    texts: Sequence[Path], output: Path, config: PretrainConfig, options: Optional[BiLMOptions] = None,
    init_weights: Optional[Path] = None, init_options: Optional[Path] = None,
    dev_texts: Optional[Sequence[Path]] = None, resume: bool = False, device: str = "auto",
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Train (or continue training) a biLM on raw text; returns a summary of the run. ``output`` may hold an earlier
    run only with ``resume`` (continue it) or ``overwrite`` (start afresh, replacing its files)."""
    config.check()
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output directory, --overwrite replaces it: pass one")
    if not resume and options is None and init_weights is None:
        raise ValueError("Give an options file (--options) or weights to continue from (--init-weights)")
    ctx = distributed.setup(device)
    finished = False
    try:
        summary = _pretrain(ctx, texts, Path(output), config, options, init_weights, init_options, dev_texts, resume,
                            overwrite)
        finished = True
        return summary
    finally:
        distributed.teardown(ctx, finished)


def _pretrain(ctx, texts, output, config, options, init_weights, init_options, dev_texts, resume, overwrite):
    say = tqdm.write if ctx.is_main else (lambda *_: None)
    files = check_paths(texts)
    dev_files = check_paths(dev_texts) if dev_texts else None
    output.mkdir(parents=True, exist_ok=True)
    state = None
    if resume:
        state = load_state(output / CHECKPOINT)
        saved = PretrainConfig(**state["config"])
        changed = [k for k in RUN_KEYS if getattr(saved, k) != getattr(config, k)]
        if changed:
            raise ValueError(f"--resume with settings that differ from the checkpoint's: {changed}")
        if state["world"] != ctx.world:
            raise ValueError(f"The checkpoint was written by {state['world']} processes, this run has {ctx.world}")
        if init_weights is not None:
            raise ValueError("--resume continues the run in the output directory: leave out --init-weights")
        if options is not None:
            changed = architecture_changes(BiLMOptions.from_dict(state["options"]), options)
            if changed:
                raise ValueError(f"--resume with --options that differ from the checkpoint's biLM "
                                 f"({'; '.join(changed)}): leave out --options to continue the run in {output}")
    elif (output / CHECKPOINT).exists():
        if not overwrite:
            raise ValueError(f"{output} already holds a run: pass --resume to continue it or --overwrite to start "
                             f"afresh, or choose another output directory")

    tokenizer = Tokenizer(config.lang, config.max_length)
    started = time.time()
    data = scan(files, tokenizer, config.heldout, dev_files, config.dev_max_sequences)
    say(f"Text: {data.stats.summary()}; {data.n_sequences} sequences, {data.n_tokens} tokens "
        f"(scan {time.time() - started:.1f}s); held-out: {len(data.dev)} sequences")
    if not data.dev:
        source = "the --dev text" if dev_files else f"the --heldout share ({config.heldout}) of {data.stats.lines} lines"
        say(f"Warning: no held-out text ({source} gave none): held-out perplexity is not measured. "
            f"Pass --dev, or a larger --heldout with more lines")

    torch.manual_seed(config.seed)
    if state is not None:
        if tuple(state["fingerprint"]) != data.fingerprint():
            raise ValueError("The training text differs from the text the checkpoint was trained on")
        bilm = BiLM(BiLMOptions.from_dict(state["options"]), token_ids_from_dict(state.get("tokens")))
        head_dir = None
        vocab = Vocab.from_directory(output)
    else:
        bilm, head_dir = _initial_model(options, init_weights, init_options)
        if head_dir is not None:
            vocab = Vocab.from_directory(head_dir)
            say(f"Continuing with the vocabulary and LM head of {head_dir}")
        else:
            vocab = Vocab.build(data.counts, data.n_sequences, config.vocab_size, config.min_count)
            if init_weights is not None:  # published, NLPL and ELMoForManyLangs files hold no softmax
                say(f"{init_weights} has no LM head (softmax): training a new one over a vocabulary of this text")
    vocab = vocab.with_counts(data.counts, data.n_sequences)
    extra = dict(bilm.options.extra, bidirectional=True, dropout=config.dropout, n_tokens_vocab=len(vocab))
    bilm.options = dataclasses.replace(bilm.options, extra=extra)
    cutoffs = state["cutoffs"] if state is not None else default_cutoffs(len(vocab))
    if head_dir is not None:
        cutoffs = read_head_config(head_dir)["cutoffs"]
    lm = BiLMLanguageModel(bilm, len(vocab), cutoffs, config.dropout)
    if head_dir is not None:
        load_head_weights(lm, head_dir)
    lm.train().to(ctx.device)
    optimizer = torch.optim.Adam(lm.parameters(), lr=config.learning_rate)
    progress = 0.0  # share of the decay done by the time budget; a resumed run anneals what is left in its own
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config, progress))
    step, position, tokens_seen = 0, Position(), 0
    if state is not None:
        lm.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        position = Position.restore(state["position"], len(files))
        progress = state.get("progress", 0.0)
        torch.set_rng_state(state["rng"][ctx.rank])
        if ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"][ctx.rank], ctx.device)
        say(f"Resuming at step {step} ({tokens_seen} tokens seen), data position {tuple(position)}")
    else:
        torch.manual_seed(config.seed + 7919 * (ctx.rank + 1))  # dropout stream, different on each rank
    if ctx.is_main:
        if state is None:  # the new run's first write: neither a later --resume nor the project takes an old run for it
            for name in (CHECKPOINT, SUMMARY):
                (output / name).unlink(missing_ok=True)
            # the starting biLM beside its head, so that a run stopped before its first checkpoint leaves a
            # matching pair (and an --init-weights taken from this directory is kept)
            save_native(bilm, output)
        save_head(lm, vocab, config.lang, config.max_length, output)
    unigram = unigram_perplexity(vocab, data.dev) if data.dev else float("nan")
    n_params = sum(p.numel() for p in bilm.parameters())
    dtype = autocast_dtype(config.precision, ctx.device)
    say(f"biLM {n_params / 1e6:.2f}M parameters, vocabulary {len(vocab)} (cutoffs {cutoffs}), "
        f"{ctx.world} process(es) on {ctx.device}, {str(dtype).replace('torch.', '')} products"
        + (f"; held-out unigram perplexity {unigram:.1f}" if data.dev else ""))
    if dtype == torch.bfloat16 and not native_bfloat16(ctx.device):
        say(f"Warning: {ctx.device} has no native bfloat16 products: they are emulated, many times slower "
            f"than float32 (--precision auto chooses float32 here)")

    model = distributed.wrap(lm, ctx)
    log = _Log(output / LOG, ctx.is_main, step if state is not None else None)
    stream = BatchStream(files, tokenizer, config.batch_tokens * ctx.world, config.seed,
                         0.0 if dev_files else config.heldout, min_sequences=ctx.world).start(position)
    chars = CharIdCache(lm.bilm.tokens)
    deadline = started + config.max_minutes * 60 if config.max_minutes else math.inf
    resumed_progress = progress
    window = torch.zeros(3, dtype=torch.float64)  # fwd nll, bwd nll, targets since the last log line
    window_start = time.time()
    dev_result: Dict[str, float] = {}
    last: Dict[str, float] = {}

    def checkpoint() -> None:
        rng = distributed.gather(torch.get_rng_state(), ctx)
        cuda_rng = distributed.gather(torch.cuda.get_rng_state(ctx.device), ctx) if ctx.device.type == "cuda" else []
        if not ctx.is_main:
            return
        save_state({
            "config": dataclasses.asdict(config), "options": bilm.options.to_dict(),
            "tokens": bilm.tokens.to_dict(), "cutoffs": list(cutoffs),
            "model": lm.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "position": [position.epoch, list(position.offsets), position.batch],
            "tokens_seen": tokens_seen, "rng": rng, "cuda_rng": cuda_rng,
            "world": ctx.world, "fingerprint": list(data.fingerprint()), "progress": progress,
        }, output / CHECKPOINT)
        save_native(bilm, output)
        save_head(lm, vocab, config.lang, config.max_length, output)

    def run_eval() -> None:
        if ctx.is_main and data.dev:
            dev_result.update(evaluate(lm, vocab, data.dev, config.batch_tokens, ctx.device, chars))
            log.write({"step": step, "dev_fwd_ppl": dev_result["fwd_ppl"], "dev_bwd_ppl": dev_result["bwd_ppl"],
                       "dev_ppl": dev_result["ppl"]})
            say(f"step {step}: held-out perplexity {dev_result['ppl']:.2f} (forward {dev_result['fwd_ppl']:.2f}, "
                f"backward {dev_result['bwd_ppl']:.2f}; unigram {unigram:.1f})")

    total = None if config.max_minutes else config.max_steps  # a time budget: no step count to show an ETA for
    bar = tqdm(total=total, initial=step, disable=not ctx.is_main, dynamic_ncols=True, mininterval=1.0)
    while step < config.max_steps:
        spent = _time_spent(started, deadline, ctx)
        if spent >= 1.0:
            break
        progress = max(progress, resumed_progress + (1.0 - resumed_progress) * spent)
        position, global_batch = next(stream)
        batch = tensorize(shard(global_batch, ctx.rank, ctx.world), vocab, chars).to(ctx.device)
        n_global = distributed.all_sum(torch.tensor([float(batch.n_targets)], device=ctx.device), ctx)
        with _autocast(dtype, ctx.device):
            nll = model(batch.char_ids, batch.index, batch.word_ids, batch.lengths)
        # each rank's share of the global mean; DDP averages gradients over ranks, hence * world
        loss = nll.float().sum() / (2 * n_global[0]) * ctx.world
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), config.clip)
        optimizer.step()
        scheduler.step()
        step += 1
        sums = torch.cat([distributed.all_sum(nll.detach().float(), ctx), n_global]).double().cpu()
        tokens_seen += int(sums[2])
        window += sums
        bar.update(1)
        if step % config.log_every == 0 or step == config.max_steps:
            elapsed = time.time() - window_start
            fwd, bwd = (window[:2] / window[2]).tolist()
            last = {"step": step, "epoch": position.epoch, "loss": (fwd + bwd) / 2, "ppl": math.exp((fwd + bwd) / 2),
                    "fwd_ppl": math.exp(fwd), "bwd_ppl": math.exp(bwd), "tokens_per_s": float(window[2]) / elapsed,
                    "lr": scheduler.get_last_lr()[0], "tokens_seen": tokens_seen}
            log.write(last)
            bar.set_postfix(loss=f"{last['loss']:.3f}", ppl=f"{last['ppl']:.1f}", tok_s=f"{last['tokens_per_s']:.0f}")
            window.zero_()
            window_start = time.time()
        if step % config.eval_every == 0:
            run_eval()
        if step % config.checkpoint_every == 0:
            checkpoint()
    bar.close()
    if step % config.checkpoint_every:
        checkpoint()
    if step % config.eval_every or not dev_result:  # not yet measured: a run that ended before its first eval
        run_eval()
    if ctx.is_main:
        summary = {"step": step, "tokens_seen": tokens_seen, "precision": str(dtype).replace("torch.", ""),
                   "unigram_ppl": unigram, "train": last,
                   "dev": dict(dev_result), "minutes": (time.time() - started) / 60, "text": dataclasses.asdict(data.stats)}
        atomic_write(output / SUMMARY, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
        return summary
    return {}
