"""What a biLM on disk holds, with the facts of its pretraining run when it is a ``pretrain`` output.

Above io/: :func:`spacy_elmo.io.info.describe` knows the weight formats, this adds the LM head and the run.
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..io.info import count_parameters, describe
from .trainer import SUMMARY, has_head, load_lm

PathLike = Union[str, Path]


def describe_run(path: PathLike, options: Optional[PathLike] = None) -> Dict[str, Any]:
    """:func:`~spacy_elmo.io.info.describe`, and for a pretrain output (kind ``pretrain``) its LM head and, when
    the run left a summary, its steps, tokens and perplexities."""
    info = describe(path, options)
    directory = Path(info["path"])
    if info["kind"] != "native" or not has_head(directory):
        return info
    lm, vocab, head = load_lm(directory)
    facts: Dict[str, Any] = {
        "lm_head": {"vocab_size": len(vocab), "cutoffs": list(head["cutoffs"]), "lang": head["lang"],
                    "max_length": head["max_length"], "parameters": count_parameters(lm.softmax)},
    }
    summary = directory / SUMMARY
    if summary.exists():
        try:
            run = json.loads(summary.read_text(encoding="utf8"))
            facts["pretraining"] = {"steps": run["step"], "tokens_seen": run["tokens_seen"],
                                    "dev_perplexity": run["dev"].get("ppl"), "unigram_perplexity": run["unigram_ppl"]}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{summary}: not a pretraining summary ({err!r})") from err
    return {**info, "kind": "pretrain", **facts}
