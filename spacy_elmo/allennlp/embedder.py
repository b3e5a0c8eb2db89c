"""``ElmoEmbedder`` with the names, arguments and outputs of AllenNLP 0.9's ``allennlp.commands.elmo``
(removed from later releases), computed by spacy-elmo's :class:`~spacy_elmo.bilm.Embedder`.

Stateless, unlike AllenNLP's: a sentence's vectors do not depend on the sentences embedded before it
or beside it (``docs/allennlp.md`` gives the size of the difference).
"""
import logging
from itertools import islice
from pathlib import Path
from typing import IO, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
import torch

from ..bilm.embedder import Embedder
from ..devices import parse_device
from ..embedding.writers import write_sentence_to_index
from ..files import commit, temporary
from ..io import load_bilm
from .elmo import ConfigurationError

logger = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 64
OUTPUT_FORMATS = ("all", "top", "average")
ORIGINAL_MODEL = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo/2x4096_512_2048cnn_2xhighway/"


class ElmoEmbedder:
    """ELMo's biLM layers for tokenised sentences: ``[n_layers, n_tokens, 2P]`` float32 per sentence
    (``[3, n_tokens, 1024]`` for the original model), sentence marks removed.

    AllenNLP's ``ElmoEmbedder``, stateless: AllenNLP carried each batch row's LSTM state into the next
    batch, so its vectors for a sentence changed with what came before (on the biLMs measured in
    ``docs/allennlp.md``, by a median 42-52% relative L2 in the top layer); these equal AllenNLP's for a
    batch run from zero state (its first), whatever the order and the batch. Batches are regrouped by length under
    a token budget (``max_batch_tokens``), which changes no output.

    ``options_file``, ``weight_file``: paths to a published ``options.json`` and hdf5 pair (or
    ``weight_file`` a native spacy-elmo biLM directory). Nothing is downloaded: AllenNLP's defaults were
    URLs of the original model, so these are required here. ``cuda_device``: -1 for the CPU, else a GPU index.
    """

    def __init__(
        self,
        options_file: Optional[Union[str, Path]] = None,
        weight_file: Optional[Union[str, Path]] = None,
        cuda_device: int = -1,
        max_batch_tokens: int = 4096,
    ) -> None:
        if weight_file is None:
            raise ConfigurationError(
                "ElmoEmbedder needs local files: spacy-elmo downloads nothing. Pass options_file and weight_file "
                f"(AllenNLP's default was the original model, {ORIGINAL_MODEL}elmo_2x4096_512_2048cnn_2xhighway_"
                "{options.json,weights.hdf5})"
            )
        device = parse_device("cpu" if cuda_device < 0 else f"cuda:{cuda_device}")
        bilm = load_bilm(weight_file, options_file).to(device).eval()
        self.cuda_device = cuda_device
        self.embedder = Embedder(bilm, max_batch_tokens=max_batch_tokens)

    @property
    def elmo_bilm(self):
        return self.embedder.bilm

    def _empty(self) -> numpy.ndarray:
        options = self.embedder.bilm.options
        return numpy.zeros((options.n_output_layers, 0, options.output_dim), dtype=numpy.float32)

    def batch_to_embeddings(self, batch: List[List[str]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(activations [batch, n_layers, timesteps, 2P], mask [batch, timesteps])`` for one padded batch."""
        batch = _sentences(batch)
        if not any(batch):
            options = self.embedder.bilm.options
            shape = (len(batch), options.n_output_layers, 0, options.output_dim)
            return torch.zeros(shape), torch.zeros(len(batch), 0, dtype=torch.bool)
        with torch.no_grad():
            layers, lengths = self.embedder.batch_layers(batch)
        steps = layers.shape[2]
        mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
        return layers.transpose(0, 1), mask.to(layers.device)

    def embed_sentence(self, sentence: List[str]) -> numpy.ndarray:
        """``[n_layers, n_tokens, 2P]`` for one tokenised sentence."""
        return self.embed_batch([sentence])[0]

    def embed_batch(self, batch: List[List[str]]) -> List[numpy.ndarray]:
        """One ``[n_layers, n_tokens, 2P]`` array per sentence; an empty sentence gives ``n_tokens = 0``."""
        batch = _sentences(batch)
        return [layers if len(s) else self._empty() for s, layers in zip(batch, self.embedder.embed(batch))]

    def embed_sentences(self, sentences: Iterable[List[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[numpy.ndarray]:
        """Lazily, one array per sentence, in order, ``batch_size`` sentences at a time."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        iterator = iter(sentences)
        while True:
            group = list(islice(iterator, batch_size))
            if not group:
                return
            yield from self.embed_batch(group)

    def embed_file(
        self,
        input_file: Union[IO[str], str, Path],
        output_file_path: Union[str, Path],
        output_format: str = "all",
        batch_size: int = DEFAULT_BATCH_SIZE,
        forget_sentences: bool = False,
        use_sentence_keys: bool = False,
    ) -> None:
        """Embed a file of whitespace-tokenised sentences, one per line, into an HDF5 file laid out as the
        old ``allennlp elmo`` command wrote it.

        Each line's array (``output_format``: "all" ``[n_layers, n_tokens, 2P]``, "top" the last layer
        ``[n_tokens, 2P]``, "average" the mean of the layers) is a float32 dataset keyed by the line's index
        as a string ("0", "1", ...), or by the sentence itself with ``use_sentence_keys``. Unless
        ``forget_sentences`` or ``use_sentence_keys``, a ``sentence_to_index`` dataset holds one string: the
        JSON object mapping each (stripped) line to its key. Blank lines are refused, as AllenNLP refused
        them. ``input_file`` is an open text file (closed afterwards, as AllenNLP did) or a path.
        """
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {list(OUTPUT_FORMATS)}, got {output_format!r}")
        name, sentences = _read_lines(input_file)
        h5py = _h5py()
        keys = sentences if use_sentence_keys else [str(i) for i in range(len(sentences))]
        if use_sentence_keys:
            logger.warning("Using sentences as keys can fail if sentences contain forward slashes or colons.")
            seen: Dict[str, int] = {}
            for i, sentence in enumerate(sentences):
                if sentence in seen:
                    raise ConfigurationError(f"{name}: line {i} repeats line {seen[sentence]}; duplicate sentences "
                                             "cannot be keys (do not pass use_sentence_keys)")
                seen[sentence] = i
        output_file_path = Path(output_file_path)
        tmp = temporary(output_file_path)
        try:
            with h5py.File(tmp, "w") as out:
                vectors = self.embed_sentences((s.split() for s in sentences), batch_size)
                for i, (key, layers) in enumerate(zip(keys, vectors)):
                    array = _select(layers, output_format)
                    try:
                        out.create_dataset(key, array.shape, dtype="float32", data=array)
                    except (ValueError, KeyError, TypeError) as err:
                        raise ConfigurationError(f"{name}: line {i} cannot be an HDF5 key ({err}): "
                                                 "do not pass use_sentence_keys") from None
                if not forget_sentences and not use_sentence_keys:
                    write_sentence_to_index(out, dict(zip(sentences, keys)))
            commit(tmp, output_file_path)
        finally:
            tmp.unlink(missing_ok=True)


def _select(layers: numpy.ndarray, output_format: str) -> numpy.ndarray:
    if output_format == "top":
        return layers[-1]
    if output_format == "average":
        return layers.mean(axis=0)
    return layers


def _sentences(batch: Sequence[Sequence[str]]) -> List[List[str]]:
    """The batch as lists of str, or a one-line error saying what is wrong."""
    if isinstance(batch, str) or not isinstance(batch, Sequence):
        raise TypeError(f"expected a list of tokenised sentences (lists of str), got {type(batch).__name__}")
    out = []
    for i, sentence in enumerate(batch):
        if isinstance(sentence, str):
            raise TypeError(f"sentence {i} is a str, not a list of tokens: split it first (sentence.split())")
        tokens = list(sentence)
        bad = next((t for t in tokens if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"sentence {i} holds a {type(bad).__name__} ({bad!r}), not a str token")
        out.append(tokens)
    return out


def _read_lines(input_file: Union[IO[str], str, Path]) -> Tuple[str, List[str]]:
    """``(name, stripped lines)``; blank lines refused with their indexes."""
    if isinstance(input_file, (str, Path)):
        from ..files import existing_file

        path = existing_file(input_file, "input file")
        with open(path, encoding="utf8") as handle:
            return _read_lines(handle)
    name = str(getattr(input_file, "name", "input file"))
    try:
        sentences = [line.strip() for line in input_file]
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 text (byte {err.start})") from None
    finally:
        input_file.close()
    blank = [i for i, line in enumerate(sentences) if line == ""]
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (", ..." if len(blank) > 10 else "")
        raise ConfigurationError(f"{name} has empty lines at indexes {shown} ({len(blank)} in all): remove them")
    return name, sentences


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("embed_file writes HDF5 and needs h5py: pip install 'spacy-elmo[hdf5]'") from err
    return h5py
