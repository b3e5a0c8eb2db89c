"""Convert a WNUT-17 file (``token<TAB>IOB2-tag``, blank line between sentences) to a .spacy DocBin."""
from pathlib import Path
from typing import List, Tuple

import typer
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab


def read_sentences(path: Path) -> List[Tuple[List[str], List[str]]]:
    sentences: List[Tuple[List[str], List[str]]] = []
    words: List[str] = []
    tags: List[str] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        word, _, tag = line.rstrip("\n").rpartition("\t")
        words.append(word)
        tags.append(tag.strip() or "O")
    if words:
        sentences.append((words, tags))
    return sentences


def main(source: Path, output: Path, limit: int = typer.Option(0, help="keep only the first N sentences")) -> None:
    vocab = Vocab()
    sentences = read_sentences(source)
    if limit:
        sentences = sentences[:limit]
    db = DocBin()
    for words, tags in sentences:
        db.add(Doc(vocab, words=words, ents=tags))
    output.parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(output)
    print(f"{source.name}: {len(sentences)} sentences -> {output}")


if __name__ == "__main__":
    typer.run(main)
