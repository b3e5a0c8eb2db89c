"""``python -m spacy_elmo`` / ``spacy-elmo``: pretrain, evaluate and export biLMs (typer, like spaCy's CLI)."""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

app = typer.Typer(name="spacy-elmo", help="Train, evaluate and export ELMo biLMs.", no_args_is_help=True,
                  add_completion=False)
Arg = typer.Argument
Opt = typer.Option


def _fail(err: Exception) -> None:
    msg.fail(str(err), exits=1)


@app.command("pretrain")
def pretrain_cli(
    texts: List[Path] = Arg(..., help="Raw text: .txt (one sentence or paragraph per line), .jsonl ('text' field), .spacy files, or directories of them"),
    output: Path = Opt(..., "--output", "-o", help="Output directory: a native biLM plus LM head, checkpoint and log"),
    options: Optional[Path] = Opt(None, "--options", "-c", help="biLM options.json (published format) for a new biLM"),
    init_weights: Optional[Path] = Opt(None, "--init-weights", help="Continue training this biLM: a native or pretrain output directory, or a published hdf5 file (with --init-options)"),
    init_options: Optional[Path] = Opt(None, "--init-options", help="options.json of the --init-weights hdf5 file"),
    dev: Optional[List[Path]] = Opt(None, "--dev", help="Held-out text (default: a stable --heldout fraction of the training lines)"),
    lang: str = Opt("en", "--lang", "-l", help="spaCy language code of the tokenizer"),
    vocab_size: int = Opt(50_000, "--vocab-size", help="Output vocabulary size, specials included"),
    min_count: int = Opt(2, "--min-count", help="Minimum count of a vocabulary token"),
    max_steps: int = Opt(10_000, "--max-steps", help="Optimizer steps"),
    max_minutes: float = Opt(0.0, "--max-minutes", help="Stop (and save) after this many minutes; 0: no limit"),
    batch_tokens: int = Opt(4096, "--batch-tokens", "-b", help="Padded tokens per batch and process"),
    max_length: int = Opt(100, "--max-length", help="Longer token sequences are cut into pieces of this length"),
    learning_rate: float = Opt(2e-3, "--learning-rate", "--lr", help="Peak Adam learning rate"),
    warmup_steps: int = Opt(200, "--warmup-steps", help="Linear warmup steps"),
    final_lr: float = Opt(0.1, "--final-lr", help="Learning rate at max_steps, as a fraction of the peak"),
    dropout: float = Opt(0.1, "--dropout", help="Dropout on LSTM inputs and the top layer"),
    clip: float = Opt(1.0, "--clip", help="Gradient norm clipping"),
    seed: int = Opt(0, "--seed", help="Random seed (data order, initialisation, dropout)"),
    heldout: float = Opt(0.01, "--heldout", help="Fraction of lines held out when --dev is not given"),
    dev_max_sequences: int = Opt(2000, "--dev-max-sequences", help="Held-out sequences evaluated"),
    eval_every: int = Opt(500, "--eval-every", help="Held-out perplexity every N steps"),
    checkpoint_every: int = Opt(200, "--checkpoint-every", help="Checkpoint every N steps"),
    log_every: int = Opt(10, "--log-every", help="Log training loss every N steps"),
    resume: bool = Opt(False, "--resume", help="Continue the run in --output exactly where it stopped"),
    device: str = Opt("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    threads: int = Opt(0, "--threads", help="torch threads per process (0: torch's default)"),
) -> None:
    """Pretrain a biLM on raw text (or continue training one). Run under torchrun for several processes."""
    import torch

    from .bilm.options import BiLMOptions
    from .pretraining import PretrainConfig, pretrain

    if threads:
        torch.set_num_threads(threads)
    config = PretrainConfig(
        lang=lang, vocab_size=vocab_size, min_count=min_count, max_steps=max_steps, batch_tokens=batch_tokens,
        max_length=max_length, learning_rate=learning_rate, warmup_steps=warmup_steps, final_lr=final_lr,
        dropout=dropout, clip=clip, seed=seed, heldout=heldout, dev_max_sequences=dev_max_sequences,
        eval_every=eval_every, checkpoint_every=checkpoint_every, log_every=log_every, max_minutes=max_minutes,
    )
    try:
        opts = BiLMOptions.from_file(options) if options is not None else None
        summary = pretrain(texts, output, config, opts, init_weights, init_options, dev or None, resume, device)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    if summary:
        dev_ppl = summary["dev"].get("ppl", float("nan"))
        msg.good(f"Trained {summary['step']} steps ({summary['tokens_seen']} tokens) in {summary['minutes']:.1f} min; "
                 f"held-out perplexity {dev_ppl:.2f}, unigram {summary['unigram_ppl']:.1f}. biLM in {output}")


@app.command("evaluate")
def evaluate_cli(
    model: Path = Arg(..., help="A pretrain output directory"),
    texts: List[Path] = Arg(..., help="Held-out text (.txt, .jsonl, .spacy)"),
    batch_tokens: int = Opt(4096, "--batch-tokens", "-b", help="Padded tokens per batch"),
    max_sequences: int = Opt(0, "--max-sequences", help="Evaluate at most this many sequences (0: all)"),
    device: str = Opt("auto", "--device", help="auto, cpu, cuda or cuda:N"),
) -> None:
    """Forward, backward and average perplexity of a trained biLM on held-out text."""
    from .pretraining.corpus import CorpusStats, Tokenizer, check_paths, read_items
    from .pretraining.distributed import setup
    from .pretraining.trainer import evaluate, load_lm

    try:
        lm, vocab, head = load_lm(model)
        ctx = setup(device)
        tokenizer = Tokenizer(head["lang"], head["max_length"])
        stats = CorpusStats()
        sequences = []
        for path in check_paths(texts):
            before = stats.lines
            sequences.extend(tokenizer(item for _, item in read_items(path, 0, stats)))
            if stats.lines == before:
                raise ValueError(f"Input file {path} has no usable text")
        if max_sequences:
            sequences = sequences[:max_sequences]
        result = evaluate(lm.to(ctx.device), vocab, sequences, batch_tokens, ctx.device)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    msg.info(f"Text: {stats.summary()}; {result['tokens']} targets per direction")
    msg.table([("forward", f"{result['fwd_ppl']:.2f}"), ("backward", f"{result['bwd_ppl']:.2f}"),
               ("average", f"{result['ppl']:.2f}")], header=("perplexity", ""), divider=True)


@app.command("export")
def export_cli(
    model: Path = Arg(..., help="A native biLM directory (e.g. a pretrain output)"),
    output: Path = Arg(..., help="Directory for options.json and weights.hdf5 (published bilm-tf/AllenNLP layout)"),
) -> None:
    """Export a biLM to the published options.json + weights.hdf5 layout."""
    from .io import load_native, save_hdf5

    try:
        bilm = load_native(model)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    output.mkdir(parents=True, exist_ok=True)
    save_hdf5(bilm, output / "options.json", output / "weights.hdf5")
    msg.good(f"Exported to {output / 'options.json'} and {output / 'weights.hdf5'}")


def main() -> None:
    app()
