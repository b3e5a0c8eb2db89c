"""``python -m spacy_elmo`` / ``spacy-elmo``: pretrain, evaluate, export, convert, inspect biLMs and embed corpora
(typer, like spaCy's CLI)."""
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from wasabi import msg

app = typer.Typer(name="spacy-elmo", help="Train, evaluate and export ELMo biLMs.", no_args_is_help=True,
                  add_completion=False)
Arg = typer.Argument
Opt = typer.Option


def _message(err: Exception) -> str:
    """One line for an error: the OS's reason and the path for OS errors that carry one."""
    if isinstance(err, OSError) and err.filename is not None:
        target = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{err.filename}{target}: {err.strerror or err}"
    return str(err)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Errors of the user's input or files (ValueError, OSError) and a missing optional extra (ImportError)
    end the command with one line, not a traceback; anything else is a bug and keeps its traceback."""
    try:
        yield
    except (ValueError, OSError, ImportError) as err:
        msg.fail(_message(err), exits=1)


@app.command("pretrain")
def pretrain_cli(
    texts: List[Path] = Arg(..., help="Raw text: .txt (one sentence or paragraph per line), .jsonl ('text' field), .spacy files, or directories of them"),
    output: Path = Opt(..., "--output", "-o", help="Output directory: a native biLM plus LM head, checkpoint and log"),
    options: Optional[Path] = Opt(None, "--options", "-c", help="biLM options.json (published format) for a new biLM"),
    init_weights: Optional[Path] = Opt(None, "--init-weights", help="Continue training this biLM: a native or pretrain output directory, a published hdf5 file (with --init-options), an NLPL zip or folder, or an ELMoForManyLangs folder (these have no softmax: a new LM head is trained)"),
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
    overwrite: bool = Opt(False, "--overwrite", help="Start afresh even if --output holds a run, replacing its files"),
    device: str = Opt("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    threads: int = Opt(0, "--threads", help="torch threads per process (0: torch's default)"),
    precision: str = Opt("auto", "--precision", help="Products in auto (bfloat16 autocast on a CUDA GPU with bfloat16, else float32), float32 or bfloat16"),
) -> None:
    """Pretrain a biLM on raw text (or continue training one). Run under torchrun for several processes."""
    import torch

    from .bilm.options import BiLMOptions
    from .pretraining import PretrainConfig, pretrain

    config = PretrainConfig(
        lang=lang, vocab_size=vocab_size, min_count=min_count, max_steps=max_steps, batch_tokens=batch_tokens,
        max_length=max_length, learning_rate=learning_rate, warmup_steps=warmup_steps, final_lr=final_lr,
        dropout=dropout, clip=clip, seed=seed, heldout=heldout, dev_max_sequences=dev_max_sequences,
        eval_every=eval_every, checkpoint_every=checkpoint_every, log_every=log_every, max_minutes=max_minutes,
        precision=precision,
    )
    with _one_line_errors():
        if threads < 0:
            raise ValueError(f"--threads must be 0 (torch's default) or positive, got {threads}")
        if threads:
            torch.set_num_threads(threads)
        opts = BiLMOptions.from_file(options) if options is not None else None
        summary = pretrain(texts, output, config, opts, init_weights, init_options, dev or None, resume, device,
                           overwrite)
    if summary:
        dev_scores = summary["dev"]
        held_out = (f"held-out perplexity {dev_scores['ppl']:.2f}, unigram {summary['unigram_ppl']:.1f}"
                    if dev_scores else "no held-out text")
        msg.good(f"Trained {summary['step']} steps ({summary['tokens_seen']} tokens) in {summary['minutes']:.1f} min; "
                 f"{held_out}. biLM in {output}")


@app.command("evaluate")
def evaluate_cli(
    model: Path = Arg(..., help="A pretrain output directory"),
    texts: List[Path] = Arg(..., help="Held-out text (.txt, .jsonl, .spacy)"),
    batch_tokens: int = Opt(4096, "--batch-tokens", "-b", help="Padded tokens per batch"),
    max_sequences: int = Opt(0, "--max-sequences", help="Evaluate at most this many sequences (0: all)"),
    per_line: Optional[Path] = Opt(None, "--per-line", help="Also write one JSON line per input line (file, line, tokens, log probabilities, perplexities) to this file; '-': standard output"),
    token_scores: bool = Opt(False, "--token-scores", help="With --per-line: every target's log probability too"),
    device: str = Opt("auto", "--device", help="auto, cpu, cuda or cuda:N"),
) -> None:
    """Forward, backward and average perplexity of a trained biLM on held-out text, and per line."""
    import json
    import sys

    from .pretraining.corpus import CorpusStats, Tokenizer, check_paths, numbered_items
    from .pretraining.distributed import setup
    from .pretraining.scores import LMScorer, ScoreTotals, score_lines
    from .pretraining.trainer import load_lm

    with _one_line_errors():
        lm, vocab, head = load_lm(model)
        scorer = LMScorer(lm, vocab, setup(device).device, batch_tokens)
        tokenizer = Tokenizer(head["lang"], head["max_length"])
        stats = CorpusStats()
        out = (sys.stdout if str(per_line) == "-" else per_line.open("w", encoding="utf8")) if per_line else None
        total = ScoreTotals()
        for path in check_paths(texts):
            before = stats.lines
            left = max_sequences - total.n_sequences if max_sequences else 0
            if max_sequences and left <= 0:
                break
            for line, score in score_lines(scorer, tokenizer, numbered_items(path, stats), left):
                total.add(score)
                if out:
                    record = {"file": str(path), "line": line, **score.to_dict(token_scores)}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            if stats.lines == before:
                raise ValueError(f"Input file {path} has no usable text")
        if out and out is not sys.stdout:
            out.close()
    summary = [("forward", f"{total.fwd_ppl:.2f}"), ("backward", f"{total.bwd_ppl:.2f}"), ("average", f"{total.ppl:.2f}")]
    text = f"Text: {stats.summary()}; {total.n_targets} targets per direction"
    if out is not sys.stdout:
        msg.info(text)
        msg.table(summary, header=("perplexity", ""), divider=True)
    else:  # the JSON lines own standard output
        typer.echo(text + "; perplexity " + ", ".join(f"{k} {v}" for k, v in summary), err=True)


@app.command("export")
def export_cli(
    model: Path = Arg(..., help="A native biLM directory (e.g. a pretrain output), or any model folder load_bilm reads"),
    output: Path = Arg(..., help="Directory for options.json and weights.hdf5 (published bilm-tf/AllenNLP layout); "
                                 "for an ELMoForManyLangs model, its own folder layout"),
) -> None:
    """Export a biLM to its family's published form: options.json + weights.hdf5 (bilm-tf, AllenNLP, NLPL), or
    an ELMoForManyLangs folder (config.json, char.dic, word.dic, two state dicts) for a model with its
    character vocabulary, which has no hdf5 form."""
    from .io import load_bilm, save_efml, save_hdf5

    with _one_line_errors():
        bilm = load_bilm(model)
        output.mkdir(parents=True, exist_ok=True)
        if bilm.tokens.kind == "elmoformanylangs":
            save_efml(bilm, output)
            written = f"{output} (ELMoForManyLangs layout)"
        else:
            save_hdf5(bilm, output / "options.json", output / "weights.hdf5")
            written = f"{output / 'options.json'} and {output / 'weights.hdf5'}"
    msg.good(f"Exported to {written}")


@app.command("convert")
def convert_cli(
    weights: Path = Arg(..., help="A published hdf5 weight file, an NLPL zip or folder, or an ELMoForManyLangs folder"),
    output: Path = Arg(..., help="Directory for the native biLM (options.json + weights.pt [+ tokens.json])"),
    options: Optional[Path] = Opt(None, "--options", "-c", help="The hdf5 file's options.json (default: options.json or the published name beside it)"),
) -> None:
    """Convert a biLM of any family to a native biLM directory, which loads without h5py and without pickle."""
    from .io.info import convert

    with _one_line_errors():
        info = convert(weights, output, options)
    msg.good(f"Converted {weights} to {output} ({info['parameters']['total']:,} parameters, digest {info['digest'][:16]})")


def _info_rows(info: dict) -> List[tuple]:
    opts, params, sizes = info["options"], info["parameters"], info["sizes"]
    cnn, lstm = opts["char_cnn"], opts["lstm"]
    vocab = info["vocabulary"]
    rows = [
        ("kind", info["kind"]),
        ("language", info["language"] or "not declared"),
        ("token ids", vocab["token_ids"] + (f": {vocab['characters']:,} characters, {vocab['words']:,} words "
                                             f"(word embedding {vocab['word_dim']})" if "characters" in vocab else "")),
        ("options", info["options_file"]),
        ("parameters", f"{params['total']:,} ({params['total'] / 1e6:.1f}M: character CNN {params['token_encoder']:,}, "
                       f"LSTM {params['lstm']:,})"),
        ("character CNN", f"{sizes['char_filters']} filters of widths {[w for w, _ in cnn['filters']]}, "
                          f"{sizes['highway_layers']} highway, embedding {cnn['embedding']['dim']}, {cnn['activation']}"),
        ("LSTM", f"{sizes['lstm_layers']} layers of {sizes['lstm_dim']} cells, projection {sizes['projection_dim']}, "
                 f"clips {lstm['cell_clip']} / {lstm['proj_clip']}, skip connections {lstm['use_skip_connections']}"),
        ("output", f"{sizes['output_layers']} layers of width {sizes['output_width']}"),
        ("listener width", str(info["listener_width"])),
    ]
    rows += [(f"file {name}", f"{size:,} bytes") for name, size in info["files"].items()]
    if "lm_head" in info:
        head = info["lm_head"]
        rows.append(("LM head", f"vocabulary {head['vocab_size']:,}, cutoffs {head['cutoffs']}, lang {head['lang']}, "
                                f"{head['parameters']:,} parameters"))
    if "pretraining" in info:
        run = info["pretraining"]
        rows.append(("pretraining", f"{run['steps']:,} steps, {run['tokens_seen']:,} tokens, held-out perplexity "
                                    f"{run['dev_perplexity']}, unigram {run['unigram_perplexity']:.1f}"))
    rows.append(("digest (sha256)", info["digest"]))
    return rows


@app.command("info")
def info_cli(
    path: Path = Arg(..., help="A published hdf5 weight file, a native biLM directory, a pretrain output, an NLPL zip or folder, or an ELMoForManyLangs folder"),
    options: Optional[Path] = Opt(None, "--options", "-c", help="The hdf5 file's options.json (default: options.json or the published name beside it)"),
    as_json: bool = Opt(False, "--json", help="Print the facts as JSON"),
) -> None:
    """A biLM's options, parameter count, sizes, listener width and a digest of its arrays."""
    from .pretraining.run_info import describe_run

    with _one_line_errors():
        info = describe_run(path, options)
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        msg.divider(str(path))
        msg.table(_info_rows(info))

@app.command("embed")
def embed_cli(
    texts: List[Path] = Arg(..., help="Input: .txt (one sentence or paragraph per line), .jsonl ('text' or 'tokens'), .spacy, or directories of them"),
    weights: Path = Opt(..., "--weights", "-w", help="biLM: a published hdf5 weight file (with --options) or a native directory"),
    options: Optional[Path] = Opt(None, "--options", "-c", help="options.json of the hdf5 weight file"),
    output: Path = Opt(..., "--output", "-o", help="Output directory: manifest.json and shards/ (and an HDF5 file per input)"),
    fmt: str = Opt("parquet", "--format", "-f", help="parquet (a row per line) or hdf5 (the old `allennlp elmo` layout)"),
    layers: str = Opt("all", "--layers", help="all, top or average"),
    dtype: str = Opt("float32", "--dtype", help="float32 (every reader) or float16: half the size; Parquet FLOAT16 is read by pyarrow, pandas, DuckDB 1.2+ and Ray, not by Spark or Trino"),
    tokenized: bool = Opt(False, "--tokenized", help="Lines are whitespace-tokenised already"),
    lang: str = Opt("en", "--lang", "-l", help="spaCy language code of the tokenizer"),
    model: Optional[str] = Opt(None, "--model", help="A saved spaCy pipeline to tokenise with; its sentence boundaries are used"),
    window: int = Opt(128, "--window", help="Longest sequence the biLM reads; longer lines are read in pieces"),
    precision: str = Opt("exact", "--precision", help="exact (float32) or fast (bfloat16 products)"),
    batch_tokens: int = Opt(4096, "--batch-tokens", "-b", help="Padded tokens per biLM batch"),
    chunk_tokens: int = Opt(16_384, "--chunk-tokens", help="Tokens read, sorted by length and written at a time"),
    shard_lines: int = Opt(10_000, "--shard-lines", help="Input lines per output shard"),
    resume: bool = Opt(False, "--resume", help="Continue the run in --output, skipping finished shards"),
    device: str = Opt("auto", "--device", help="auto, cpu, cuda or cuda:N (under torchrun: the local rank's GPU)"),
    threads: int = Opt(0, "--threads", help="torch threads per process (0: torch's default)"),
    engine: str = Opt("local", "--engine", help="local (one process, or torchrun's ranks), ray (Ray actors) or spark (a Spark task per shard)"),
    address: Optional[str] = Opt(None, "--address", help="Ray cluster address ('auto': a running cluster; default: a local Ray), or Spark master URL (default: PYSPARK_SUBMIT_ARGS's, else local[*])"),
    workers: int = Opt(0, "--workers", help="Ray actors (0: the cluster's CPUs / --cpus-per-worker)"),
    cpus_per_worker: float = Opt(1.0, "--cpus-per-worker", help="CPUs per Ray actor"),
    gpus_per_worker: float = Opt(0.0, "--gpus-per-worker", help="GPUs per Ray actor"),
) -> None:
    """Embed a corpus to ELMo vectors on disk: streaming, resumable, in shards. Run under torchrun, or with
    --engine ray or spark, to spread the shards over processes; the files are the same either way."""
    import torch

    from .embedding import EmbedSettings, embed_corpus

    if threads:
        torch.set_num_threads(threads)
    with _one_line_errors():
        if engine not in ("local", "ray", "spark"):
            raise ValueError(f"--engine must be local, ray or spark, got {engine!r}")
        settings = EmbedSettings(format=fmt, layers=layers, dtype=dtype, lang=lang, model=model, tokenized=tokenized,
                                 window=window, precision=precision, max_batch_tokens=batch_tokens,
                                 chunk_tokens=chunk_tokens, shard_lines=shard_lines)
        if engine == "ray":
            from .embedding.ray_data import embed_corpus_on_ray

            result = embed_corpus_on_ray(texts, output, weights, options, settings, resume, address, workers,
                                         cpus_per_worker, gpus_per_worker, device, say=msg.info)
        elif engine == "spark":
            from .embedding.spark import embed_corpus_on_spark

            result = embed_corpus_on_spark(texts, output, weights, options, settings, resume, address, device, threads,
                                           say=msg.info)
        else:
            result = embed_corpus(texts, output, weights, options, settings, resume, device)
    if result:
        manifest = result["manifest"]
        msg.info(f"Text: {result['stats'].summary()}")
        msg.good(f"Embedded {manifest['rows']} lines ({manifest['tokens']} tokens) in {len(manifest['shards'])} "
                 f"shard(s): {output}")


def main() -> None:
    app()
