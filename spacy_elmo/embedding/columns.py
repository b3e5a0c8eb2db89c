"""A batch of rows to the same batch with ELMo columns: what the Ray Data and Spark paths run on each batch.

A batch is a pyarrow Table with a ``text`` column (raw text, tokenised as the CLI does) or a ``tokens``
column (lists of words). It comes back with ``tokens`` and the layer columns of the CLI's Parquet shards
(``layer_0`` ... or ``top`` / ``average``), appended after the other columns, which pass through.
"""
from typing import List, Sequence

import numpy

from .segment import Segmented
from .vectors import row_layers
from .worker import Worker


def batch_items(batch, text_column: str, tokens_column: str) -> list:
    """The batch's items: its token lists if it has ``tokens_column``, else its texts (a null: empty)."""
    if tokens_column in batch.column_names:
        return [list(t or ()) for t in batch.column(tokens_column).to_pylist()]
    if text_column in batch.column_names:
        return [t or "" for t in batch.column(text_column).to_pylist()]
    raise ValueError(f"ELMo columns need a {text_column!r} or {tokens_column!r} column; the data has "
                     f"{list(batch.column_names)}")


def add_elmo_columns(worker: Worker, batch, text_column: str = "text", tokens_column: str = "tokens"):
    """``batch`` (a pyarrow Table) with its rows' ``tokens`` and stored ELMo layers. A row's vectors equal
    :meth:`Embedder.embed` on its pieces, as in the CLI; a row without tokens gets empty lists."""
    import pyarrow as pa

    segments = worker.segmenter(batch_items(batch, text_column, tokens_column))
    layout = worker.layout
    vectors = [layout.store(v) for v in segment_layers(worker, segments)]
    out = batch.drop_columns([c for c in [tokens_column, *layout.columns] if c in batch.column_names])
    out = out.append_column(tokens_column, pa.array([s.tokens for s in segments], pa.list_(pa.string())))
    for name, column in layout.vector_columns(vectors).items():
        out = out.append_column(name, column)
    return out


def segment_layers(worker: Worker, segments: Sequence[Segmented]) -> List[numpy.ndarray]:
    """float32 layers per row; a row without tokens gets ``[L, 0, 2P]``."""
    opts = worker.embedder.bilm.options
    full = [s for s in segments if s.tokens]
    computed = iter(row_layers(worker.embedder, full))
    empty = numpy.zeros((opts.n_output_layers, 0, opts.output_dim), numpy.float32)
    return [next(computed) if s.tokens else empty for s in segments]
