"""The per-batch step of the Ray and Spark paths (:func:`add_elmo_columns`), without either: a batch of texts or
token lists gets the tokens and layer columns of ``embed``'s shards, each row equal to :meth:`Embedder.embed`."""
import numpy
import pytest
import spacy

from spacy_elmo.bilm import Embedder
from spacy_elmo.embedding import EmbedSettings, Worker
from spacy_elmo.embedding.columns import add_elmo_columns
from spacy_elmo.io import load_bilm

pa = pytest.importorskip("pyarrow")

LINES = ["They can't trust their friends.", "", None, "A dog ran after the cat and the cat ran up a tree ."]


@pytest.mark.parametrize("column", ["text", "tokens"])
def test_rows_equal_embedder_and_other_columns_pass_through(tiny_files, column):
    options, weights = tiny_files
    nlp = spacy.blank("en")
    tokens = [[t.text for t in nlp(line or "") if not t.is_space] for line in LINES]
    worker = Worker(EmbedSettings(window=6), weights, options)
    items = LINES if column == "text" else [t if line is not None else None for t, line in zip(tokens, LINES)]
    batch = pa.table({"id": [10, 11, 12, 13], column: items})
    out = add_elmo_columns(worker, batch)
    assert out.column_names == ["id", *(["text"] if column == "text" else []), "tokens", "layer_0", "layer_1", "layer_2"]
    assert out.column("id").to_pylist() == [10, 11, 12, 13]
    assert out.column("tokens").to_pylist() == tokens
    embedder = Embedder(load_bilm(weights, options))
    for i, words in enumerate(tokens):
        got = numpy.stack([out.column(f"layer_{j}")[i].values.flatten().to_numpy().reshape(-1, 32) for j in range(3)])
        if not words:  # blank or null: no tokens, empty lists
            assert got.shape == (3, 0, 32)
            continue
        # the long line is read in windows of 6, joined along the tokens, as embed reads it
        want = numpy.concatenate(embedder.embed([words[k : k + 6] for k in range(0, len(words), 6)]), axis=1)
        assert got.dtype == numpy.float32 and numpy.abs(got - want).max() <= 4e-6


def test_a_batch_without_the_columns_is_one_clear_error(tiny_files):
    options, weights = tiny_files
    worker = Worker(EmbedSettings(), weights, options)
    with pytest.raises(ValueError, match="need a 'text' or 'tokens' column; the data has \\['body'\\]"):
        add_elmo_columns(worker, pa.table({"body": ["x"]}))
