"""The published weight layout of bilm-tf / AllenNLP: ``options.json`` plus an hdf5 file.

h5py is imported only here, and only when a file is read or written (``pip install spacy-elmo[hdf5]``).
"""
import itertools
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple, Union

import numpy
import torch

from ..bilm.model import BiLM
from ..bilm.options import BiLMOptions
from ..files import existing_file

Shape = Tuple[int, ...]


class WeightFileError(ValueError):
    """A weight file that cannot be used; the message names the file (and the dataset)."""


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Reading or writing published hdf5 weights needs h5py: pip install 'spacy-elmo[hdf5]'") from err
    return h5py


def _cell(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def published_layout(options: BiLMOptions) -> Iterator[Tuple[str, Shape]]:
    """Every dataset of a published weight file with the shape the options require."""
    cnn, lstm = options.char_cnn, options.lstm
    yield "char_embed", (261, cnn.embedding_dim)
    for i, (width, count) in enumerate(cnn.filters):
        yield f"CNN/W_cnn_{i}", (1, width, cnn.embedding_dim, count)
        yield f"CNN/b_cnn_{i}", (count,)
    n = cnn.n_filters
    for k in range(cnn.n_highway):
        for part in ("transform", "carry"):
            yield f"CNN_high_{k}/W_{part}", (n, n)
            yield f"CNN_high_{k}/b_{part}", (n,)
    yield "CNN_proj/W_proj", (n, lstm.projection_dim)
    yield "CNN_proj/b_proj", (lstm.projection_dim,)
    for d in range(2):
        for layer in range(lstm.n_layers):
            yield f"{_cell(d, layer)}/W_0", (2 * lstm.projection_dim, 4 * lstm.dim)
            yield f"{_cell(d, layer)}/B", (4 * lstm.dim,)
            yield f"{_cell(d, layer)}/W_P_0", (lstm.dim, lstm.projection_dim)


def _to_state(arrays: Dict[str, numpy.ndarray], options: BiLMOptions) -> Dict[str, torch.Tensor]:
    """Published arrays to a :class:`BiLM` state dict (the only place the two layouts meet)."""
    cnn, lstm = options.char_cnn, options.lstm
    t = lambda a: torch.from_numpy(numpy.ascontiguousarray(a, dtype=numpy.float32))  # noqa: E731
    embed = numpy.zeros((262, cnn.embedding_dim), dtype=numpy.float32)
    embed[1:] = arrays["char_embed"]
    state = {"token_encoder.embedding.weight": t(embed)}
    for i in range(len(cnn.filters)):
        state[f"token_encoder.convs.{i}.weight"] = t(arrays[f"CNN/W_cnn_{i}"][0].transpose(2, 1, 0))
        state[f"token_encoder.convs.{i}.bias"] = t(arrays[f"CNN/b_cnn_{i}"])
    for k in range(cnn.n_highway):
        g = f"CNN_high_{k}"
        state[f"token_encoder.highways.{k}.proj.weight"] = t(
            numpy.concatenate([arrays[f"{g}/W_transform"].T, arrays[f"{g}/W_carry"].T])
        )
        state[f"token_encoder.highways.{k}.proj.bias"] = t(
            numpy.concatenate([arrays[f"{g}/b_transform"], arrays[f"{g}/b_carry"]])
        )
    state["token_encoder.projection.weight"] = t(arrays["CNN_proj/W_proj"].T)
    state["token_encoder.projection.bias"] = t(arrays["CNN_proj/b_proj"])
    p = lstm.projection_dim
    for layer in range(lstm.n_layers):
        w = [arrays[f"{_cell(d, layer)}/W_0"] for d in range(2)]
        prefix = f"lstm.layers.{layer}"
        state[f"{prefix}.weight_ih"] = t(numpy.stack([x[:p] for x in w]))
        state[f"{prefix}.weight_hh"] = t(numpy.stack([x[p:] for x in w]))
        state[f"{prefix}.bias"] = t(numpy.stack([arrays[f"{_cell(d, layer)}/B"] for d in range(2)]))
        state[f"{prefix}.weight_proj"] = t(numpy.stack([arrays[f"{_cell(d, layer)}/W_P_0"] for d in range(2)]))
    return state


def _from_state(bilm: BiLM) -> Dict[str, numpy.ndarray]:
    """The inverse of :func:`_to_state`."""
    options = bilm.options
    s = {k: v.detach().float().cpu().numpy() for k, v in bilm.state_dict().items()}
    cnn, lstm = options.char_cnn, options.lstm
    n = cnn.n_filters
    arrays = {"char_embed": s["token_encoder.embedding.weight"][1:]}
    for i in range(len(cnn.filters)):
        arrays[f"CNN/W_cnn_{i}"] = s[f"token_encoder.convs.{i}.weight"].transpose(2, 1, 0)[None]
        arrays[f"CNN/b_cnn_{i}"] = s[f"token_encoder.convs.{i}.bias"]
    for k in range(cnn.n_highway):
        w = s[f"token_encoder.highways.{k}.proj.weight"]
        b = s[f"token_encoder.highways.{k}.proj.bias"]
        arrays[f"CNN_high_{k}/W_transform"], arrays[f"CNN_high_{k}/W_carry"] = w[:n].T, w[n:].T
        arrays[f"CNN_high_{k}/b_transform"], arrays[f"CNN_high_{k}/b_carry"] = b[:n], b[n:]
    arrays["CNN_proj/W_proj"] = s["token_encoder.projection.weight"].T
    arrays["CNN_proj/b_proj"] = s["token_encoder.projection.bias"]
    for layer in range(lstm.n_layers):
        prefix = f"lstm.layers.{layer}"
        for d in range(2):
            cell = _cell(d, layer)
            arrays[f"{cell}/W_0"] = numpy.concatenate([s[f"{prefix}.weight_ih"][d], s[f"{prefix}.weight_hh"][d]])
            arrays[f"{cell}/B"] = s[f"{prefix}.bias"][d]
            arrays[f"{cell}/W_P_0"] = s[f"{prefix}.weight_proj"][d]
    return arrays


def _count(handle, name: Callable[[int], str]) -> int:
    """How many of ``name(0)``, ``name(1)``, ... the file holds, in a row."""
    return next(i for i in itertools.count() if name(i) not in handle)


def _check_counts(handle, path: Path, options: BiLMOptions) -> None:
    """The file's numbers of filters, highways and LSTM layers against the options, before any shape is
    computed from them (an options file asking for 10^6 layers fails here, not in an allocation)."""
    counts = (
        ("char_cnn.filters", len(options.char_cnn.filters), "character filters", lambda i: f"CNN/W_cnn_{i}"),
        ("char_cnn.n_highway", options.char_cnn.n_highway, "highway layers", lambda i: f"CNN_high_{i}"),
        ("lstm.n_layers", options.lstm.n_layers, "LSTM layers", lambda i: _cell(0, i)),
    )
    for key, wanted, what, name in counts:
        found = _count(handle, name)
        if found < wanted and name(wanted - 1) in handle:  # a gap: one dataset is missing, not the options wrong
            raise WeightFileError(f"ELMo weight file {path} lacks the dataset {name(found)}")
        if found != wanted:
            raise WeightFileError(
                f"ELMo weight file {path} holds {found} {what} ({name(0)}, ...), but the options have {key} "
                f"with {wanted}: are these the options of this file?"
            )


def _read_dataset(handle, path: Path, name: str, shape: Shape) -> numpy.ndarray:
    """One dataset, checked: a floating-point dataset (not a group) of ``shape`` with finite values (integers
    would be weights cut to whole numbers: no tool writes them so)."""
    h5py = _h5py()
    if name not in handle:
        raise WeightFileError(f"ELMo weight file {path}: dataset '{name}' is missing (expected shape {shape})")
    node = handle[name]
    if not isinstance(node, h5py.Dataset):
        raise WeightFileError(f"ELMo weight file {path}: '{name}' is a {type(node).__name__}, not a dataset of shape {shape}")
    if node.dtype.kind != "f":
        raise WeightFileError(
            f"ELMo weight file {path}: dataset '{name}' holds {node.dtype} values, not floating-point numbers"
        )
    if tuple(node.shape) != shape:
        raise WeightFileError(
            f"ELMo weight file {path}: dataset '{name}' has shape {tuple(node.shape)}, but the options require {shape}"
        )
    try:
        array = numpy.asarray(node[...], dtype=numpy.float32)
    except Exception as err:  # as in read_hdf5_arrays
        raise WeightFileError(f"ELMo weight file {path}: dataset '{name}' cannot be read (truncated?): {err}") from err
    if not numpy.isfinite(array).all():
        raise WeightFileError(f"ELMo weight file {path}: dataset '{name}' holds NaN or infinite values")
    return array


def read_hdf5_arrays(path: Union[str, Path], options: BiLMOptions) -> Dict[str, numpy.ndarray]:
    """Read and check every dataset the options require; errors name file, dataset and shapes."""
    path = existing_file(path, "ELMo weight file")
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as handle:
            _check_counts(handle, path, options)
            return {name: _read_dataset(handle, path, name, shape) for name, shape in published_layout(options)}
    except WeightFileError:
        raise
    except Exception as err:  # HDF5 reports corrupt metadata from any call, as OSError, RuntimeError, KeyError, ...
        raise WeightFileError(
            f"ELMo weight file {path} cannot be read as hdf5 (truncated, corrupt or not hdf5?): {err}"
        ) from err


def load_hdf5(options_path: Union[str, Path], weight_path: Union[str, Path]) -> BiLM:
    """A :class:`BiLM` from a published ``options.json`` + hdf5 pair; the file is checked against the
    options before the model is built."""
    options = BiLMOptions.from_file(options_path)
    arrays = read_hdf5_arrays(weight_path, options)
    bilm = BiLM(options)
    bilm.load_state_dict(_to_state(arrays, options))
    return bilm.eval()


def save_hdf5(bilm: BiLM, options_path: Union[str, Path], weight_path: Union[str, Path]) -> None:
    """Write ``bilm`` in the published layout (readable by AllenNLP and bilm-tf)."""
    if bilm.tokens.to_dict() is not None:  # its characters are not UTF-8 bytes: the layout cannot hold them
        raise ValueError(f"a biLM with {bilm.tokens.kind} token ids has no published hdf5 form (export writes its own layout)")
    h5py = _h5py()
    options = bilm.options
    bilm.options.to_file(options_path)
    arrays = _from_state(bilm)
    with h5py.File(weight_path, "w") as handle:
        for name, shape in published_layout(options):
            data = numpy.ascontiguousarray(arrays[name], dtype=numpy.float32)
            assert data.shape == shape, (name, data.shape, shape)
            handle.create_dataset(name, data=data)
