"""AllenNLP's parameter names for the biLM, read into spacy-elmo's: a state dict saved from a model built
on AllenNLP's ``Elmo`` (fine-tuned biLM included) loads into one built on ``spacy_elmo.allennlp.Elmo``.

AllenNLP's layout is undone to the published one (its transposes, its highway carry negated, its LSTM gate
order i, f, j, o and the forget bias it folds in), and the published one is read as ``io.hdf5`` reads files.
"""
from typing import Dict, List, MutableMapping

import numpy
import torch

from ..bilm.options import BiLMOptions
from ..io.hdf5 import _cell, _to_state

TOKEN_EMBEDDER = "_token_embedder."
LSTM = "_elmo_lstm."


def is_allennlp_state(state: MutableMapping[str, torch.Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix + TOKEN_EMBEDDER) or k.startswith(prefix + LSTM) for k in state)


def _swap_gates(x: numpy.ndarray, cells: int) -> numpy.ndarray:
    """AllenNLP's gate blocks (i, f, j, o) along axis 0 to TensorFlow's (i, j, f, o); its own inverse."""
    return numpy.concatenate([x[:cells], x[2 * cells : 3 * cells], x[cells : 2 * cells], x[3 * cells :]])


def published_arrays(state: MutableMapping[str, torch.Tensor], prefix: str, options: BiLMOptions) -> Dict[str, numpy.ndarray]:
    """Pop AllenNLP's biLM entries under ``prefix`` from ``state``; the published arrays they hold."""
    def take(name: str) -> numpy.ndarray:
        key = prefix + name
        if key not in state:
            raise KeyError(f"AllenNLP state dict lacks {key} (a biLM with other options than {options.to_dict()}?)")
        return state.pop(key).detach().float().cpu().numpy()

    cnn, lstm = options.char_cnn, options.lstm
    t = TOKEN_EMBEDDER
    arrays = {"char_embed": take(f"{t}_char_embedding_weights")[1:]}
    for i in range(len(cnn.filters)):
        arrays[f"CNN/W_cnn_{i}"] = take(f"{t}char_conv_{i}.weight").transpose(2, 1, 0)[None]
        arrays[f"CNN/b_cnn_{i}"] = take(f"{t}char_conv_{i}.bias")
    n = cnn.n_filters
    for k in range(cnn.n_highway):
        weight, bias = take(f"{t}_highways._layers.{k}.weight"), take(f"{t}_highways._layers.{k}.bias")
        arrays[f"CNN_high_{k}/W_transform"], arrays[f"CNN_high_{k}/W_carry"] = weight[:n].T, -weight[n:].T
        arrays[f"CNN_high_{k}/b_transform"], arrays[f"CNN_high_{k}/b_carry"] = bias[:n], -bias[n:]
    arrays["CNN_proj/W_proj"] = take(f"{t}_projection.weight").T
    arrays["CNN_proj/b_proj"] = take(f"{t}_projection.bias")
    cells = lstm.dim
    for layer in range(lstm.n_layers):
        for d, direction in enumerate(("forward", "backward")):
            cell = f"{LSTM}{direction}_layer_{layer}."
            w_in = _swap_gates(take(cell + "input_linearity.weight"), cells)
            w_rec = _swap_gates(take(cell + "state_linearity.weight"), cells)
            bias = _swap_gates(take(cell + "state_linearity.bias"), cells)
            bias[2 * cells : 3 * cells] -= 1.0  # AllenNLP folds the forget bias in; the published B has not
            arrays[f"{_cell(d, layer)}/W_0"] = numpy.concatenate([w_in, w_rec], axis=1).T
            arrays[f"{_cell(d, layer)}/B"] = bias
            arrays[f"{_cell(d, layer)}/W_P_0"] = take(cell + "state_projection.weight").T
    return arrays


def translate(state: MutableMapping[str, torch.Tensor], prefix: str, options: BiLMOptions, bilm_name: str) -> List[str]:
    """Replace AllenNLP's biLM entries under ``prefix`` by ours under ``prefix + bilm_name``, in place;
    returns the keys written."""
    ours = _to_state(published_arrays(state, prefix, options), options)
    for key, value in ours.items():
        state[f"{prefix}{bilm_name}.{key}"] = value
    return list(ours)
