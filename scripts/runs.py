"""The project's repeated runs (one training per seed, one pretraining per time budget): their folder names, the
comma lists in `vars` that say which to run, running each once, and reading what they wrote.

A run that finishes writes ``run.json`` into its folder: its command line and the md5 of every file or folder
that line names. A later call skips a run whose folder records the same, so an interrupted workflow continues
where it stopped, while a changed setting or input (a new biLM, say) runs it again from scratch."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, TypeVar

import typer

STAMP = "run.json"
T = TypeVar("T")


def seed_name(seed: int) -> str:
    return f"seed{seed}"


def budget_name(minutes: float) -> str:
    return f"bilm_{minutes:g}min"


def parse_list(text: str, kind: Callable[[str], T], option: str) -> List[T]:
    """The values of a comma list such as ``"0,1,2"``: at least one, none twice."""
    try:
        values = [kind(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: expected comma-separated numbers, such as 0,1,2") from None
    if not values or len(set(values)) != len(values):
        raise typer.BadParameter(f"{option} {text!r}: expected at least one value and none twice")
    return values


def md5(path: Path) -> str:
    """md5 of a file, or of a folder's files (their relative names and bytes)."""
    digest = hashlib.md5()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def run_once(command: List[str], folder: Path, inputs: Sequence[str]) -> bool:
    """Run ``python *command`` to fill ``folder``, unless ``folder`` records a finished run of the same command over
    the same ``inputs`` (the arguments among them that name files or folders are hashed). Whether it ran."""
    stamp = {"command": command, "inputs": {arg: md5(Path(arg)) for arg in inputs if arg and Path(arg).exists()}}
    try:
        if json.loads((folder / STAMP).read_text()) == stamp:
            print(f"{folder}: finished with these settings and inputs, skipped", flush=True)
            return False
    except (OSError, ValueError):
        pass
    if folder.exists():  # a run that stopped, or one of other settings or inputs
        shutil.rmtree(folder)
    print("python " + " ".join(command), flush=True)
    status = subprocess.run([sys.executable, *command]).returncode
    if status:
        raise SystemExit(f"{folder}: the run failed (exit status {status})")
    if not folder.is_dir():
        raise SystemExit(f"{folder}: the run finished but wrote no folder")
    (folder / STAMP).write_text(json.dumps(stamp, indent=2))
    return True


def read_json(path: Path, what: str) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: missing ({what})") from None
    except ValueError as err:
        raise SystemExit(f"{path}: not JSON ({err})") from None


def read_pretraining(path: Path) -> Dict[str, Any]:
    """Steps, tokens seen, minutes and held-out perplexity (None without held-out text) from a pretraining's
    summary.json."""
    summary = read_json(path, "the summary a finished pretraining writes")
    try:
        return {"steps": int(summary["step"]), "tokens_seen": int(summary["tokens_seen"]),
                "minutes": float(summary["minutes"]), "dev_ppl": (summary["dev"] or {}).get("ppl"),
                "unigram_ppl": float(summary["unigram_ppl"])}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SystemExit(f"{path}: not a pretraining summary ({err!r})") from None
