"""Convert CLINC150 ``data_full.json`` (in-scope intents) to .spacy DocBins for train, dev and test."""
import json
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin


def main(
    source: Path,
    output_dir: Path,
    limit: int = typer.Option(0, help="keep only the first N examples of each split"),
) -> None:
    data = json.loads(source.read_text(encoding="utf8"))
    labels = sorted({intent for _, intent in data["train"]})
    nlp = spacy.blank("en")
    output_dir.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train"), ("val", "dev"), ("test", "test")):
        rows = data[split][:limit] if limit else data[split]
        db = DocBin()
        for doc, intent in zip(nlp.pipe(text for text, _ in rows), (i for _, i in rows)):
            doc.cats = {label: float(label == intent) for label in labels}
            db.add(doc)
        db.to_disk(output_dir / f"{name}.spacy")
        print(f"{split}: {len(rows)} examples, {len(labels)} intents -> {output_dir / name}.spacy")


if __name__ == "__main__":
    typer.run(main)
