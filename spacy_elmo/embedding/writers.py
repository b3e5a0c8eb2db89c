"""Shard writers: Parquet (one row per line, pyarrow) and HDF5 (the layout of the old ``allennlp elmo``).

Both write a chunk at a time, so memory holds one chunk, and commit the file atomically when the shard ends.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Type

import numpy

from ..files import commit, temporary
from .vectors import stored

SENTENCE_TO_INDEX = "sentence_to_index"


class Row:
    """One input line: its file, line number, the text it is keyed by in ``sentence_to_index``, its tokens."""

    __slots__ = ("file", "line", "text", "tokens")

    def __init__(self, file: str, line: int, text: str, tokens: List[str]) -> None:
        self.file, self.line, self.text, self.tokens = file, line, text, tokens


def layer_columns(layers: str, n_layers: int) -> List[str]:
    """Parquet column names of the stored vectors."""
    return [f"layer_{i}" for i in range(n_layers)] if layers == "all" else [layers]


def require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ValueError("Parquet output needs pyarrow: pip install 'spacy-elmo[parquet]' (or --format hdf5)") from err
    return pyarrow


def require_h5py():
    try:
        import h5py
    except ImportError as err:
        raise ValueError("HDF5 output needs h5py: pip install 'spacy-elmo[hdf5]' (or --format parquet)") from err
    return h5py


class Layout:
    """What a row stores: ``layers`` ("all", "top", "average") of ``n_layers``, ``width`` wide, in ``dtype``."""

    def __init__(self, layers: str, n_layers: int, width: int, dtype: str) -> None:
        self.layers, self.n_layers, self.width, self.dtype = layers, n_layers, width, numpy.dtype(dtype)
        self.columns = layer_columns(layers, n_layers)

    @property
    def bytes_per_token(self) -> int:
        return (self.n_layers if self.layers == "all" else 1) * self.width * self.dtype.itemsize

    def store(self, layers: numpy.ndarray) -> numpy.ndarray:
        """A row's float32 ``[L, n, width]`` layers as stored."""
        return stored(layers, self.layers, self.dtype)

    def parquet_options(self) -> Dict[str, object]:
        """Dictionaries, statistics and compression for the ids and tokens only: dense float vectors gain
        about nothing from them (a few %) and their dictionary encoding alone took longer than the biLM."""
        ids = ["file", "line", "tokens"]
        return {"use_dictionary": ["file", "tokens"], "write_statistics": ids,
                "compression": {name: "snappy" if name in ids else "none" for name in ids + self.columns}}

    def to_dict(self) -> Dict[str, object]:
        return {"layers": self.layers, "n_layers": self.n_layers, "width": self.width, "dtype": self.dtype.name,
                "columns": self.columns}

    def arrow_vectors(self, arrays: Sequence[numpy.ndarray]):
        """``list<fixed_size_list<float, width>>``: one list of token vectors per row, from ``[n_i, width]``."""
        pa = require_pyarrow()
        offsets = numpy.zeros(len(arrays) + 1, dtype=numpy.int32)
        numpy.cumsum([len(a) for a in arrays], out=offsets[1:])
        flat = numpy.concatenate([a.reshape(-1) for a in arrays]) if arrays else numpy.zeros(0, self.dtype)
        if flat.dtype == numpy.float16:  # pyarrow converts float16 arrays value by value; its bits, at once
            values = pa.array(flat.view(numpy.uint16)).view(pa.float16())
        else:
            values = pa.array(flat)
        tokens = pa.FixedSizeListArray.from_arrays(values, self.width)
        return pa.ListArray.from_arrays(pa.array(offsets), tokens)

    def vector_columns(self, vectors: Sequence[numpy.ndarray]) -> Dict[str, object]:
        """The layer columns of rows whose stored vectors are ``[L, n, width]`` (all) or ``[n, width]``."""
        if self.layers != "all":
            return {self.columns[0]: self.arrow_vectors(vectors)}
        return {name: self.arrow_vectors([v[i] for v in vectors]) for i, name in enumerate(self.columns)}

    def table(self, rows: Sequence[Row], vectors: Sequence[numpy.ndarray]):
        """The rows as a pyarrow Table: ``file``, ``line``, ``tokens`` and the layer columns."""
        pa = require_pyarrow()
        columns = {"file": pa.array([r.file for r in rows], pa.string()),
                   "line": pa.array([r.line for r in rows], pa.int64()),
                   "tokens": pa.array([r.tokens for r in rows], pa.list_(pa.string()))}
        columns.update(self.vector_columns(vectors))
        return pa.table(columns)


class ParquetShard:
    def __init__(self, path: Path, layout: Layout) -> None:
        require_pyarrow()
        self.path, self.tmp, self.layout = path, temporary(path), layout
        self.writer: Optional[Any] = None  # a pyarrow.parquet.ParquetWriter once the first rows come
        self.rows = 0

    def write(self, rows: Sequence[Row], vectors: Sequence[numpy.ndarray]) -> None:
        import pyarrow.parquet as pq

        if not rows:
            return
        table = self.layout.table(rows, vectors)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, **self.layout.parquet_options())
        self.writer.write_table(table)
        self.rows += len(rows)

    def close(self) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:  # a shard of skipped lines only: an empty file with the schema
            empty = self.layout.table([], [])
            pq.write_table(empty, self.tmp, **self.layout.parquet_options())
        else:
            self.writer.close()
        commit(self.tmp, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


class HDF5Shard:
    """A dataset per line named by its line number (``str``), float ``[3, n, 2P]`` (all) or ``[n, 2P]``, and
    ``sentence_to_index``: a 1-element variable-length string dataset holding the JSON object that maps each
    line's text to its key (a repeated text keeps its first place and its last key, as a dict does)."""

    def __init__(self, path: Path, layout: Layout) -> None:
        self.h5py = require_h5py()
        self.path, self.tmp = path, temporary(path)
        self.file = self.h5py.File(self.tmp, "w")
        self.index: Dict[str, str] = {}
        self.rows = 0

    def write(self, rows: Sequence[Row], vectors: Sequence[numpy.ndarray]) -> None:
        for row, array in zip(rows, vectors):
            key = str(row.line)
            self.file.create_dataset(key, data=array)
            self.index[row.text] = key
        self.rows += len(rows)

    def close(self) -> None:
        write_sentence_to_index(self.file, self.index)
        self.file.close()
        commit(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def write_sentence_to_index(h5file, index: Dict[str, str]) -> None:
    import h5py

    dataset = h5file.create_dataset(SENTENCE_TO_INDEX, (1,), dtype=h5py.string_dtype())
    dataset[0] = json.dumps(index)


WRITERS: Dict[str, Type] = {"parquet": ParquetShard, "hdf5": HDF5Shard}
SUFFIXES = {"parquet": ".parquet", "hdf5": ".hdf5"}
