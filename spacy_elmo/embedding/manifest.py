"""``manifest.json``: what a run embeds with which biLM and settings, its shards and their row counts.

Written when a run starts (``complete: false``) and again when every shard is finished; ``--resume``
continues only a run whose manifest describes the same input, biLM and settings.
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..files import write_json

MANIFEST = "manifest.json"
SAME_RUN_KEYS = ("format", "layout", "settings", "options", "weights_sha256", "inputs", "shards")
RESULT_KEYS = ("file", "rows", "tokens", "skipped")


def weights_digest(weights: Path) -> str:
    """sha256 of the weight file (of every file, in name order, for a native directory)."""
    digest = hashlib.sha256()
    files = sorted(p for p in weights.iterdir() if p.is_file()) if weights.is_dir() else [weights]
    for path in files:
        if weights.is_dir():
            digest.update(path.name.encode("utf8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_manifest(output: Path) -> Optional[Dict[str, Any]]:
    path = output / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it was not written by spacy-elmo embed") from err


def _plan(manifest: Dict[str, Any], key: str) -> Any:
    value = manifest.get(key)
    if key == "shards" and isinstance(value, list):
        # "words", the shard's token count, is not part of what a run embeds (an older version estimated it)
        return [{k: v for k, v in s.items() if k not in RESULT_KEYS and k != "words"} for s in value]
    return value


def resume_problem(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """Why ``new`` cannot continue the run of ``old`` (``None``: it can)."""
    for key in SAME_RUN_KEYS:
        if _plan(old, key) != _plan(new, key):
            return (f"the run in the output directory differs in {key!r}: --resume continues only the same input, "
                    f"biLM and settings")
    return None


def write_manifest(output: Path, manifest: Dict[str, Any], records: Sequence[Optional[dict]]) -> Dict[str, Any]:
    """The manifest with each finished shard's file, rows, tokens and skipped lines (``records`` by shard)."""
    shards = [dict(s, **({"file": r["file"], "rows": r["rows"], "tokens": r["tokens"],
                          "skipped": r["stats"]["skipped_by_file"].get(s["path"], 0)} if r else {}))
              for s, r in zip(manifest["shards"], records)]
    done = [r for r in records if r]
    out = dict(manifest, shards=shards, complete=len(done) == len(records), rows=sum(r["rows"] for r in done),
               tokens=sum(r["tokens"] for r in done))
    write_json(output / MANIFEST, out)
    return out
