"""The settings of an embedding run: one home for each, checked once."""
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

FORMATS = ("parquet", "hdf5")
LAYERS = ("all", "top", "average")
DTYPES = ("float32", "float16")
RUNTIME_ONLY = ("max_batch_tokens", "cache_size")
OPTION_NAMES = {"max_batch_tokens": "--batch-tokens"}  # the embed option of a setting named otherwise
# Parquet FLOAT16 columns: read by these, refused by Spark (PARQUET_TYPE_ILLEGAL) and Trino; float32 by all
FLOAT16_READERS = "pyarrow, pandas, DuckDB 1.2+, Ray (not Spark, Trino)"


@dataclass(frozen=True)
class EmbedSettings:
    """What the output depends on (besides the weights and the input).

    ``dtype``: float32, which every Parquet reader reads and the old ``allennlp elmo`` wrote; float16 halves
    the size, for Parquet readers that know its FLOAT16 type (:data:`FLOAT16_READERS`) and for HDF5.
    ``window``: longest sequence the biLM reads, as in the ``elmo`` component; longer lines (and each
    sentence, with ``model``) are read in pieces whose vectors are concatenated into the line's row.
    """

    format: str = "parquet"
    layers: str = "all"
    dtype: str = "float32"
    lang: str = "en"
    model: Optional[str] = None
    tokenized: bool = False
    window: int = 128
    precision: str = "exact"
    max_batch_tokens: int = 4096
    chunk_tokens: int = 16_384
    shard_lines: int = 10_000
    cache_size: int = 50_000

    def __post_init__(self) -> None:
        for name, allowed in (("format", FORMATS), ("layers", LAYERS), ("precision", ("exact", "fast"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("window", "max_batch_tokens", "chunk_tokens", "shard_lines"):
            if getattr(self, name) < 1:
                raise ValueError(f"{OPTION_NAMES.get(name, '--' + name.replace('_', '-'))} must be positive, "
                                 f"got {getattr(self, name)}")
        if self.tokenized and self.model:
            raise ValueError("--tokenized and --model exclude each other: tokenised lines are not re-tokenised")

    @property
    def storage_dtype(self) -> str:
        """The dtype the vectors are stored in."""
        return self.dtype

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def output_dict(self) -> Dict[str, Any]:
        """The settings the output files depend on (batching and caching never change a vector)."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_ONLY}
