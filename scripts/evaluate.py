"""Evaluate a trained pipeline on a .spacy test set: spaCy's scores plus, for textcat, accuracy."""
import json
import time
from pathlib import Path
from typing import Any, Dict

import spacy
import typer
from spacy.tokens import Doc, DocBin
from spacy.training import Example


def _top(cats: Dict[str, float]) -> str:
    """The label with the highest score."""
    return max(cats, key=lambda label: cats[label])


def evaluate(model: Path, data: Path) -> Dict[str, Any]:
    nlp = spacy.load(model)
    gold = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    start = time.perf_counter()
    # predict on the gold tokens (WNUT-17 is scored on its own tokenisation)
    predicted = list(nlp.pipe(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
                              for d in gold))
    seconds = time.perf_counter() - start
    examples = [Example(p, g) for p, g in zip(predicted, gold)]
    scorer = spacy.scorer.Scorer(nlp)
    scores = scorer.score(examples)
    result = {"model": str(model), "data": str(data), "n_docs": len(gold),
              "words_per_second": sum(len(d) for d in gold) / seconds}
    if "ner" in nlp.pipe_names:
        result.update(task="ner", p=scores["ents_p"], r=scores["ents_r"], f=scores["ents_f"],
                      per_type=scores["ents_per_type"])
    else:
        hits = sum(_top(p.cats) == _top(g.cats) for p, g in zip(predicted, gold))
        result.update(task="textcat", accuracy=hits / len(gold), macro_f=scores["cats_macro_f"])
    return result


def write_metrics(result: Dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "per_type"}))


def main(model: Path, data: Path, output: Path) -> None:
    write_metrics(evaluate(model, data), output)


if __name__ == "__main__":
    typer.run(main)
