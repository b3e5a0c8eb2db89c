"""A training logger that keeps spaCy's console table and also writes every evaluation as JSON lines,
with the time and words seen, so reports can plot dev score by step and state training speed."""
import sys
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

import srsly
from spacy import Language
from spacy.util import registry


@registry.loggers("spacy-elmo.JSONLLogger.v1")
def jsonl_logger(path: Optional[str] = None, progress_bar: Optional[str] = None) -> Callable:
    """Console table as ``spacy.ConsoleLogger.v3`` prints it, plus (when ``path`` is set) one JSON object
    per evaluation in ``path``: step, epoch, score, per-metric scores, losses, seconds and words seen."""
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(progress_bar=progress_bar)

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Tuple[Callable, Callable]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        if path is None:
            return log_console, finalize_console
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        stream = out.open("w", encoding="utf8")

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            log_console(info)
            if info is not None:
                record = {key: info[key] for key in ("step", "epoch", "score", "seconds", "words")}
                record["scores"] = {k: v for k, v in info["other_scores"].items() if isinstance(v, (int, float))}
                record["losses"] = {k: float(v) for k, v in info["losses"].items()}
                stream.write(srsly.json_dumps(record) + "\n")
                stream.flush()

        def finalize() -> None:
            finalize_console()
            stream.close()

        return log_step, finalize

    return setup
