"""``Elmo``, ``ScalarMix`` and ``batch_to_ids`` with AllenNLP's names, arguments and outputs
(``allennlp.modules.elmo``, ``allennlp.modules.scalar_mix``), computed by spacy-elmo's :class:`~spacy_elmo.bilm.BiLM`.

One difference is on purpose: AllenNLP's biLM carries each batch row's LSTM state into the next
``forward`` call, so a sentence's vectors depend on what ran before it; here every call starts from
zero state, as AllenNLP's first batch does (AllenNLP's later batches differ: a median 42-52% relative
L2 in the top layer on the biLMs measured in ``docs/allennlp.md``).
"""
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union, cast

import numpy
import torch
from torch import nn

from ..bilm.characters import BOS_IDS, EOS_IDS, MAX_CHARS, N_CHARACTERS, words_to_ids
from ..bilm.model import BiLM
from ..io import load_bilm
from .state import is_allennlp_state, translate

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]
LAYER_NORM_EPSILON = 1e-13  # AllenNLP's tiny value for float32 and float64 under the square root


class ConfigurationError(ValueError):
    """A setting or an input that AllenNLP would reject with its ``ConfigurationError`` (a ValueError here)."""


def batch_to_ids(batch: Sequence[Sequence[str]]) -> torch.Tensor:
    """``[len(batch), longest sentence, 50]`` int64 character ids; padded token positions are all 0.

    As AllenNLP's ``batch_to_ids``: each token's UTF-8 bytes (at most 48) between the begin- and
    end-of-word marks, padded with 260, every id plus one; ``<S>`` and ``</S>`` are the sentence marks.
    """
    if isinstance(batch, str) or any(isinstance(sentence, str) for sentence in batch):
        raise TypeError("batch_to_ids takes a list of tokenised sentences (lists of str), not a str")
    steps = max((len(sentence) for sentence in batch), default=0)
    ids = numpy.zeros((len(batch), steps, MAX_CHARS), dtype=numpy.int64)
    for row, sentence in enumerate(batch):
        bad = next((t for t in sentence if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"batch_to_ids: sentence {row} holds a {type(bad).__name__} ({bad!r}), not a str token")
        ids[row, : len(sentence)] = words_to_ids(list(sentence))
    return torch.from_numpy(ids)


class ScalarMix(nn.Module):
    """``gamma * sum_k softmax(w)_k * tensor_k``, each tensor layer-normalised first when ``do_layer_norm``.

    AllenNLP's layer norm takes one mean and one variance over every unmasked element of the whole
    batch (not per token), so with it a token's output depends on its batch-mates; this keeps that.
    Parameters are named as AllenNLP names them (``scalar_parameters.<k>``, ``gamma``).
    """

    def __init__(
        self,
        mixture_size: int,
        do_layer_norm: bool = False,
        initial_scalar_parameters: Optional[Sequence[float]] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.mixture_size = mixture_size
        self.do_layer_norm = do_layer_norm
        if initial_scalar_parameters is None:
            initial_scalar_parameters = [0.0] * mixture_size
        elif len(initial_scalar_parameters) != mixture_size:
            raise ConfigurationError(
                f"scalar_mix_parameters {list(initial_scalar_parameters)} has {len(initial_scalar_parameters)} "
                f"values, but the biLM has {mixture_size} layers to mix"
            )
        self.scalar_parameters = nn.ParameterList(
            nn.Parameter(torch.tensor([float(value)]), requires_grad=trainable) for value in initial_scalar_parameters
        )
        self.gamma = nn.Parameter(torch.tensor([1.0]), requires_grad=trainable)

    def forward(self, tensors: Sequence[torch.Tensor], mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if len(tensors) != self.mixture_size:
            raise ConfigurationError(f"{len(tensors)} tensors were passed, but the mix has {self.mixture_size}")
        weights = torch.softmax(torch.cat(list(self.scalar_parameters)), dim=0)
        if self.do_layer_norm:
            if mask is None:
                raise ConfigurationError("ScalarMix with do_layer_norm=True needs the mask")
            tensors = _batch_layer_norm(tensors, mask)
        return self.gamma * sum(w * t for w, t in zip(weights.split(1), tensors))


def _batch_layer_norm(tensors: Sequence[torch.Tensor], mask: torch.Tensor) -> List[torch.Tensor]:
    """Each tensor minus its mean, over its standard deviation, both over all unmasked elements."""
    keep = mask.unsqueeze(-1).to(tensors[0].dtype)
    count = mask.sum() * tensors[0].shape[-1]
    out = []
    for tensor in tensors:
        masked = tensor * keep
        mean = masked.sum() / count
        variance = (((masked - mean) * keep) ** 2).sum() / count
        out.append((tensor - mean) / torch.sqrt(variance + LAYER_NORM_EPSILON))
    return out


def add_sentence_boundaries(char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``[B, T, 50]`` ids to ``[B, T + 2, 50]``: ``<S>`` first, the ``T`` positions, ``</S>`` after each length."""
    batch, steps, chars = char_ids.shape
    out = char_ids.new_zeros(batch, steps + 2, chars)
    out[:, 1:-1] = char_ids
    out[:, 0] = torch.from_numpy(BOS_IDS).to(char_ids.device)
    out[torch.arange(batch, device=char_ids.device), lengths + 1] = torch.from_numpy(EOS_IDS).to(char_ids.device)
    return out


def remove_sentence_boundaries(tensor: torch.Tensor, mask: torch.Tensor):
    """``([B, T + 2, D], mask)`` to ``([B, T, D], mask)``: each row's first and last unmasked positions dropped,
    zeros after its end."""
    lengths = mask.sum(dim=1)
    steps = tensor.shape[1] - 2
    inner = torch.arange(steps, device=tensor.device).unsqueeze(0) < (lengths - 2).unsqueeze(1)
    return tensor[:, 1:-1] * inner.unsqueeze(-1).to(tensor.dtype), inner


class ElmoBiLm(nn.Module):
    """The biLM as ``Elmo`` calls it: ``forward(char_ids, word_inputs)`` gives ``{"activations": [L x [B, T + 2, 2P]],
    "mask": [B, T + 2]}``, sentence marks included, as AllenNLP's ``_ElmoBiLm``. Stateless."""

    def __init__(self, bilm: BiLM, requires_grad: bool = False, vocab_to_cache: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.bilm = bilm.train(False)
        self.bilm.requires_grad_(requires_grad)
        self.num_layers = bilm.options.n_output_layers
        self._word_embedding: Optional[nn.Embedding] = None
        if vocab_to_cache:
            if requires_grad:  # as AllenNLP: the cached vectors become a table trained apart from the CNN
                logger.warning("Fine-tuning ELMo with vocab_to_cache: the cached word vectors are trained as "
                               "a table of their own, no longer from the character CNN")
            vectors = self._cnn_vectors(vocab_to_cache)
            self.register_buffer("_boundary_vectors", vectors[:2].clone(), persistent=False)
            self._word_embedding = nn.Embedding.from_pretrained(vectors[2:].clone(), freeze=not requires_grad)
        self.register_load_state_dict_pre_hook(_read_allennlp_names)

    def _cnn_vectors(self, words: Sequence[str]) -> torch.Tensor:
        """The character-CNN vectors of ``<S>``, ``</S>`` and ``words``, in that order."""
        ids = torch.from_numpy(words_to_ids(["<S>", "</S>", *words])).to(next(self.bilm.parameters()).device)
        with torch.no_grad():
            return torch.cat([self.bilm.encode_tokens(ids[i : i + 1024]) for i in range(0, len(ids), 1024)])

    def get_output_dim(self) -> int:
        return self.bilm.options.output_dim

    def forward(self, inputs: Optional[torch.Tensor], word_inputs: Optional[torch.Tensor] = None) -> Dict[str, Any]:
        if self._word_embedding is not None and word_inputs is not None:
            tokens, lengths = self._cached_tokens(inputs, word_inputs)
        else:
            if inputs is None:
                raise ConfigurationError("Elmo needs character ids (inputs): word_inputs alone need vocab_to_cache")
            tokens, lengths = self._encoded_tokens(inputs)
        steps = tokens.shape[1]
        mask = torch.arange(steps, device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
        layers = self.bilm.contextualize(tokens, lengths)
        return {"activations": list(layers.unbind(0)), "mask": mask}

    def _encoded_tokens(self, inputs: torch.Tensor):
        """Token vectors ``[B, T + 2, P]`` (marks included) and lengths from character ids; each distinct
        token is encoded once."""
        _check_char_ids(inputs)
        lengths = ((inputs > 0).sum(dim=-1) > 0).sum(dim=1)
        with_marks = add_sentence_boundaries(inputs, lengths)
        batch, steps, chars = with_marks.shape
        unique, index = torch.unique(with_marks.reshape(-1, chars), dim=0, return_inverse=True)
        vectors = self.bilm.encode_tokens(unique)
        return vectors[index].view(batch, steps, -1), lengths + 2

    def _cached_tokens(self, inputs: Optional[torch.Tensor], word_inputs: torch.Tensor):
        """As :meth:`_encoded_tokens` from word ids into ``vocab_to_cache`` (0 is padding); a word id
        outside the vocabulary falls back to the character ids, as AllenNLP does."""
        assert self._word_embedding is not None
        n_words = self._word_embedding.num_embeddings
        if word_inputs.numel() and (int(word_inputs.min()) < 0 or int(word_inputs.max()) >= n_words):
            if inputs is None:
                raise ConfigurationError(f"word_inputs hold ids outside vocab_to_cache (0 to {n_words - 1})")
            return self._encoded_tokens(inputs)
        lengths = (word_inputs > 0).sum(dim=1)
        words = self._word_embedding(word_inputs)
        batch, steps, width = words.shape
        bos, eos = cast(torch.Tensor, self._boundary_vectors).unbind(0)
        tokens = torch.cat([bos.expand(batch, 1, width), words, words.new_zeros(batch, 1, width)], dim=1)
        is_eos = torch.arange(steps + 2, device=words.device).unsqueeze(0) == (lengths + 1).unsqueeze(1)
        return torch.where(is_eos.unsqueeze(-1), eos, tokens), lengths + 2


def _read_allennlp_names(module: ElmoBiLm, state: Dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
    """A state dict saved from AllenNLP's ``Elmo`` names the biLM's parameters its own way: read them."""
    if is_allennlp_state(state, prefix):
        translate(state, prefix, module.bilm.options, "bilm")


def _check_char_ids(inputs: torch.Tensor) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != MAX_CHARS:
        raise ConfigurationError(f"Elmo expects character ids of shape (batch, timesteps, {MAX_CHARS}) "
                                 f"from batch_to_ids, got {tuple(inputs.shape)}")
    if inputs.dtype.is_floating_point or inputs.dtype == torch.bool:
        raise ConfigurationError(f"Elmo expects integer character ids from batch_to_ids, got {inputs.dtype}")
    if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= N_CHARACTERS):
        raise ConfigurationError(f"Elmo: character ids must lie in 0..{N_CHARACTERS - 1} (from batch_to_ids), "
                                 f"got {int(inputs.min())}..{int(inputs.max())}")


class Elmo(nn.Module):
    """ELMo representations: ``num_output_representations`` learned mixes of the biLM's layers.

    AllenNLP's ``allennlp.modules.elmo.Elmo`` with the same arguments and outputs, computed by spacy-elmo's
    biLM. ``forward(inputs, word_inputs=None)`` takes ``batch_to_ids`` character ids ``(batch, timesteps, 50)``
    (or more leading dimensions) and returns ``{"elmo_representations": [(batch, timesteps, 2P), ...],
    "mask": (batch, timesteps) bool}``; with ``vocab_to_cache``, ``word_inputs`` are ids into that list
    (0 is padding) and skip the character CNN.

    **Stateless.** AllenNLP's biLM starts each call from the LSTM state its previous call left in each
    batch row; this one starts every call from zero, as AllenNLP's very first batch does. The same
    sentence gives the same vectors whatever ran before it. AllenNLP's warm vectors differ from these:
    on the two biLMs measured (``benchmarks/allennlp_stateful.py``), after other batches of 64 a
    sentence's layer 1 moved by a median 10-28% (relative L2) and its top layer by 42-52%; layer 0
    not at all (``docs/allennlp.md``).

    ``options_file``, ``weight_file``: a published ``options.json`` and hdf5 pair (or ``weight_file`` a
    native spacy-elmo biLM directory, ``options_file`` None). ``module``: a biLM of one's own instead,
    with ``num_layers`` and a ``forward(inputs, word_inputs)`` giving ``{"activations", "mask"}``.
    """

    def __init__(
        self,
        options_file: Optional[PathLike],
        weight_file: Optional[PathLike],
        num_output_representations: int,
        requires_grad: bool = False,
        do_layer_norm: bool = False,
        dropout: float = 0.5,
        vocab_to_cache: Optional[List[str]] = None,
        keep_sentence_boundaries: bool = False,
        scalar_mix_parameters: Optional[List[float]] = None,
        module: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if module is not None:
            if options_file is not None or weight_file is not None:
                raise ConfigurationError("Elmo: pass module, or options_file and weight_file, not both")
            self._elmo_lstm: nn.Module = module
        else:
            if weight_file is None:
                raise ConfigurationError("Elmo needs weight_file (and options_file for a published hdf5 file)")
            bilm = load_bilm(weight_file, options_file)
            self._elmo_lstm = ElmoBiLm(bilm, requires_grad=requires_grad, vocab_to_cache=vocab_to_cache)
        if not isinstance(num_output_representations, int) or num_output_representations < 1:
            raise ConfigurationError(f"num_output_representations must be a positive int, got {num_output_representations!r}")
        self._has_cached_vocab = vocab_to_cache is not None
        self._keep_sentence_boundaries = keep_sentence_boundaries
        self._dropout = nn.Dropout(p=dropout)
        self._scalar_mixes: List[ScalarMix] = []
        for k in range(num_output_representations):
            mix = ScalarMix(
                int(cast(int, self._elmo_lstm.num_layers)),
                do_layer_norm=do_layer_norm,
                initial_scalar_parameters=scalar_mix_parameters,
                trainable=scalar_mix_parameters is None,
            )
            self.add_module(f"scalar_mix_{k}", mix)
            self._scalar_mixes.append(mix)

    def get_output_dim(self) -> int:
        return int(self._elmo_lstm.get_output_dim())  # type: ignore[operator]

    def forward(self, inputs: Optional[torch.Tensor], word_inputs: Optional[torch.Tensor] = None) -> Dict[str, Any]:
        """``inputs``: ``(..., timesteps, 50)`` character ids; ``word_inputs``: ``(..., timesteps)`` ids into
        ``vocab_to_cache``. Returns ``elmo_representations`` (a list of ``(..., timesteps, dim)``) and ``mask``."""
        shape = tuple(inputs.shape) if inputs is not None else None
        if inputs is not None and inputs.dim() > 3:
            inputs = inputs.reshape(-1, *inputs.shape[-2:])
        word_shape = tuple(word_inputs.shape) if word_inputs is not None else None
        if word_inputs is not None:
            if not self._has_cached_vocab:
                logger.warning("Word inputs were passed to ELMo but it does not have a cached vocab.")
                word_inputs = None
            elif word_inputs.dim() > 2:
                word_inputs = word_inputs.reshape(-1, word_inputs.shape[-1])
        output = self._elmo_lstm(inputs, word_inputs)
        layers, mask = output["activations"], output["mask"]
        representations = []
        for mix in self._scalar_mixes:
            mixed = mix(layers, mask)
            if not self._keep_sentence_boundaries:
                mixed, out_mask = remove_sentence_boundaries(mixed, mask)
            else:
                out_mask = mask
            representations.append(self._dropout(mixed))
        lead = word_shape if word_shape is not None and len(word_shape) > 2 else (
            shape[:-1] if shape is not None and len(shape) > 3 else None)
        if lead is not None:
            out_mask = out_mask.view(lead)
            representations = [r.view(*lead, -1) for r in representations]
        return {"elmo_representations": representations, "mask": out_mask}
