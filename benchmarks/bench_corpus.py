"""Pretraining input from a ``.spacy`` file: seconds per chunk of our reader against decoding every Doc.

The WNUT-17 raw text (96,234 lines) is tokenised once into a DocBin under ``/tmp/spacy_elmo_bench``.
Each pretraining chunk reopens the file at its offset, so the figure that matters is the cost of one
chunk: our reader (ORTH column and strings only) against spaCy's ``DocBin.get_docs`` over the whole file,
which is what a Doc-based reader pays per chunk.

    python benchmarks/bench_corpus.py --chunk 20000
"""
import argparse
import time

from common import CORPUS, WORK

from spacy_elmo.pretraining.corpus import CorpusStats, read_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=20_000, help="items per chunk")
    args = parser.parse_args()
    import spacy
    from spacy.tokens import DocBin

    path = WORK / "raw.spacy"
    if not path.exists():
        nlp = spacy.blank("en")
        WORK.mkdir(parents=True, exist_ok=True)
        with CORPUS.open(encoding="utf8") as lines:
            DocBin(docs=(nlp.make_doc(line.strip()) for line in lines if line.strip())).to_disk(path)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    offset, chunks, start = 0, 0, time.perf_counter()
    while offset != -1:
        items, offset = read_chunk(path, offset, args.chunk, 0.0, CorpusStats())
        chunks += 1
    ours = (time.perf_counter() - start) / chunks
    start = time.perf_counter()
    n_docs = sum(1 for _ in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
    docs = time.perf_counter() - start
    print(f"{n_docs} docs, {chunks} chunks of {args.chunk}: ours {ours:.3f} s per chunk; "
          f"load + get_docs of the whole file {docs:.3f} s ({docs / ours:.1f}x)")


if __name__ == "__main__":
    main()
