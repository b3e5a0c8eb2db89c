"""An independent float64 numpy ELMo, written from the published maths, and published-layout test files.

Nothing here imports spacy_elmo: the tests compare the package against this.
"""
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy

FILTERS_TINY = [[1, 4], [2, 4], [3, 8]]


def options_dict(dim: int, proj: int, n_highway: int, filters, emb: int, n_layers: int = 2, clip=3.0,
                 activation: str = "relu", skips: bool = True, n_characters: int = 262):
    """``clip`` None: no clipping (null in the file)."""
    return {
        "lstm": {"use_skip_connections": skips, "projection_dim": proj, "cell_clip": clip, "proj_clip": clip,
                 "dim": dim, "n_layers": n_layers},
        "char_cnn": {"activation": activation, "filters": filters, "n_highway": n_highway, "embedding": {"dim": emb},
                     "n_characters": n_characters, "max_characters_per_token": 50},
    }


def random_published_arrays(opts: dict, seed: int = 0, scale: float = 0.5) -> Dict[str, numpy.ndarray]:
    """Random weights under the published dataset names; large enough that the clips are reached."""
    rng = numpy.random.default_rng(seed)
    cnn, lstm = opts["char_cnn"], opts["lstm"]
    emb = cnn["embedding"]["dim"]
    r = lambda *shape: (rng.standard_normal(shape) * scale).astype(numpy.float32)  # noqa: E731
    arrays = {"char_embed": r(261, emb)}
    n = 0
    for i, (width, count) in enumerate(cnn["filters"]):
        arrays[f"CNN/W_cnn_{i}"] = r(1, width, emb, count)
        arrays[f"CNN/b_cnn_{i}"] = r(count)
        n += count
    for k in range(cnn["n_highway"]):
        for part in ("transform", "carry"):
            arrays[f"CNN_high_{k}/W_{part}"] = r(n, n) / numpy.sqrt(n)
            arrays[f"CNN_high_{k}/b_{part}"] = r(n)
    p, c = lstm["projection_dim"], lstm["dim"]
    arrays["CNN_proj/W_proj"] = r(n, p) / numpy.sqrt(n) * 4
    arrays["CNN_proj/b_proj"] = r(p)
    for d in range(2):
        for layer in range(lstm["n_layers"]):
            cell = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            # strong input weights and gate biases drive both clips; weak recurrent weights keep the
            # dynamics contractive, so float32 round-off is not amplified chaotically
            w_in = r(p, 4 * c) / numpy.sqrt(p) * 2
            w_rec = r(p, 4 * c) / numpy.sqrt(p) * 0.5
            arrays[f"{cell}/W_0"] = numpy.concatenate([w_in, w_rec])
            bias = r(4 * c)
            bias[: c] += 1.0  # input gate open
            bias[c : 2 * c] += numpy.where(numpy.arange(c) % 2, 1.5, -1.5).astype(numpy.float32)
            bias[2 * c : 3 * c] += 2.0  # long memory: cells accumulate past the clip
            arrays[f"{cell}/B"] = bias
            arrays[f"{cell}/W_P_0"] = r(c, p) / numpy.sqrt(c) * 8
    return {name: a.astype(numpy.float32) for name, a in arrays.items()}


def write_published(directory: Path, opts: dict, arrays: Dict[str, numpy.ndarray]):
    """Write ``options.json`` and ``weights.hdf5`` with h5py, in the bilm-tf layout."""
    import h5py

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "options.json").write_text(json.dumps(opts))
    with h5py.File(directory / "weights.hdf5", "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)
    return directory / "options.json", directory / "weights.hdf5"


# bilm-tf (UnicodeCharsVocabulary) and AllenNLP (ELMoCharacterMapper) read these two token strings as the
# sentence marks themselves, never as their bytes
MARK_TOKENS = {"<S>": 256, "</S>": 257}


def char_ids(word) -> List[int]:
    """Published character ids; ``word`` may be a str or one of the ints 256 (BOS) / 257 (EOS)."""
    if isinstance(word, str) and word in MARK_TOKENS:
        word = MARK_TOKENS[word]
    payload = [word] if isinstance(word, int) else list(word.encode("utf-8", "ignore")[:48])
    ids = [258] + payload + [259]
    ids += [260] * (50 - len(ids))
    return [i + 1 for i in ids]


CLIPS = {"cell": 0, "proj": 0}  # how often each clip changed a value: tests check the clips are exercised


def sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def token_vectors(arrays, opts, words: Sequence) -> numpy.ndarray:
    cnn = opts["char_cnn"]
    a = {k: v.astype(numpy.float64) for k, v in arrays.items()}
    table = numpy.zeros((262, a["char_embed"].shape[1]))
    table[1:] = a["char_embed"]
    out = []
    for word in words:
        x = table[char_ids(word)]  # [50, emb]
        feats = []
        for i, (width, count) in enumerate(cnn["filters"]):
            w = a[f"CNN/W_cnn_{i}"][0]  # [width, emb, count]
            conv = numpy.stack([numpy.einsum("ke,kec->c", x[p : p + width], w) for p in range(50 - width + 1)])
            conv = conv + a[f"CNN/b_cnn_{i}"]
            pooled = conv.max(axis=0)  # the activation after the max (both are monotonic: the same either way)
            feats.append(numpy.tanh(pooled) if cnn["activation"] == "tanh" else numpy.maximum(pooled, 0.0))
        h = numpy.concatenate(feats)
        for k in range(cnn["n_highway"]):
            g = f"CNN_high_{k}"
            carry = sigmoid(h @ a[f"{g}/W_carry"] + a[f"{g}/b_carry"])
            transform = numpy.maximum(h @ a[f"{g}/W_transform"] + a[f"{g}/b_transform"], 0.0)
            h = carry * transform + (1 - carry) * h
        out.append(h @ a["CNN_proj/W_proj"] + a["CNN_proj/b_proj"])
    return numpy.stack(out)


def lstm_direction(arrays, opts, x: numpy.ndarray, direction: int) -> List[numpy.ndarray]:
    lstm = opts["lstm"]
    a = {k: v.astype(numpy.float64) for k, v in arrays.items()}
    c_dim, clip_c, clip_p = lstm["dim"], lstm["cell_clip"], lstm["proj_clip"]
    seq = x if direction == 0 else x[::-1]
    outputs = []
    for layer in range(lstm["n_layers"]):
        cell = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
        W, B, WP = a[f"{cell}/W_0"], a[f"{cell}/B"], a[f"{cell}/W_P_0"]
        h = numpy.zeros(WP.shape[1])
        c = numpy.zeros(c_dim)
        out = []
        for t in range(len(seq)):
            z = numpy.concatenate([seq[t], h]) @ W + B
            i, j, f, o = numpy.split(z, 4)  # TensorFlow order
            c = sigmoid(f + 1.0) * c + sigmoid(i) * numpy.tanh(j)
            CLIPS["cell"] += int((numpy.abs(c) > clip_c).sum()) if clip_c else 0
            c = numpy.clip(c, -clip_c, clip_c) if clip_c else c  # null or 0: no clipping
            h = (sigmoid(o) * numpy.tanh(c)) @ WP
            CLIPS["proj"] += int((numpy.abs(h) > clip_p).sum()) if clip_p else 0
            h = numpy.clip(h, -clip_p, clip_p) if clip_p else h
            out.append(h)
        out = numpy.stack(out)
        if layer > 0 and lstm["use_skip_connections"]:
            out = out + seq
        outputs.append(out if direction == 0 else out[::-1])
        seq = out
    return outputs


def elmo_layers(arrays, opts, words: Sequence[str]) -> numpy.ndarray:
    """``[n_layers + 1, len(words), 2P]`` float64, sentence marks removed."""
    x = token_vectors(arrays, opts, [256, *words, 257])
    fwd = lstm_direction(arrays, opts, x, 0)
    bwd = lstm_direction(arrays, opts, x, 1)
    layers = [numpy.concatenate([x, x], axis=-1)]
    layers += [numpy.concatenate([f, b], axis=-1) for f, b in zip(fwd, bwd)]
    return numpy.stack(layers)[:, 1:-1]


def lm_top_states(arrays, opts, words: Sequence[str]):
    """The top LSTM layer of each direction over ``<S> words </S>``: two ``[len(words) + 2, P]`` float64."""
    x = token_vectors(arrays, opts, [256, *words, 257])
    return lstm_direction(arrays, opts, x, 0)[-1], lstm_direction(arrays, opts, x, 1)[-1]


def log_softmax(z: numpy.ndarray) -> numpy.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=-1, keepdims=True))


def adaptive_log_probs(head: Dict[str, numpy.ndarray], cutoffs: Sequence[int], vocab_size: int,
                       states: numpy.ndarray) -> numpy.ndarray:
    """``[N, vocab_size]`` log probabilities of an adaptive softmax (Grave et al. 2017) from its arrays: the
    head scores the shortlist and one entry per tail cluster; a word in cluster i gets that entry's log
    probability plus its own within the cluster (a two-factor low-rank projection)."""
    h = {k: v.astype(numpy.float64) for k, v in head.items()}
    bounds = [*cutoffs, vocab_size]
    head_lp = log_softmax(states @ h["head.weight"].T + h.get("head.bias", 0.0))
    out = numpy.empty((len(states), vocab_size))
    out[:, : bounds[0]] = head_lp[:, : bounds[0]]
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        tail = log_softmax(states @ h[f"tail.{i}.0.weight"].T @ h[f"tail.{i}.1.weight"].T)
        out[:, start:stop] = tail + head_lp[:, bounds[0] + i : bounds[0] + i + 1]
    return out


# -- ELMoForManyLangs, written from its package's code (elmo.read_list, frontend.create_one_batch,
# ConvTokenEmbedder, Highway, ElmobiLm, LstmCellWithProjection), on its own state dict names --------------


def read_efml_dic(path: Path) -> Dict[str, int]:
    """``char.dic`` / ``word.dic`` as the package reads them (a line left with only its id: U+3000)."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) == 1:
            fields.insert(0, "\u3000")
        table[fields[0]] = int(fields[1])
    return table


def efml_tokens(sentence: Sequence[str], max_chars: int) -> List[str]:
    """``<bos>`` + the tokens cut to ``max_chars - 2`` characters + ``<eos>``."""
    return ["<bos>", *(w[: max_chars - 2] if len(w) + 2 > max_chars else w for w in sentence), "<eos>"]


def efml_char_ids(token: str, chars: Dict[str, int], max_chars: int) -> List[int]:
    """The package's ids (not shifted): ``<eow>``'s id first and ``<bow>``'s last, as its code swaps them."""
    ids = [chars["<eow>"]]
    ids += [chars[token]] if token in ("<bos>", "<eos>") else [chars.get(c, chars["<oov>"]) for c in token]
    ids.append(chars["<bow>"])
    return ids + [chars["<pad>"]] * (max_chars - len(ids))


def efml_layers(embedder: Dict[str, numpy.ndarray], encoder: Dict[str, numpy.ndarray], arch: dict,
                chars: Dict[str, int], words, sentence: Sequence[str]) -> numpy.ndarray:
    """``[n_layers + 1, len(sentence), 2P]`` float64, sentence marks removed."""
    e = {k: v.astype(numpy.float64) for k, v in embedder.items()}
    emb, enc = arch["token_embedder"], arch["encoder"]
    max_chars = emb["max_characters_per_token"]
    tokens = efml_tokens(sentence, max_chars)
    vectors = []
    for token in tokens:
        x = e["char_emb_layer.embedding.weight"][efml_char_ids(token, chars, max_chars)]  # [max_chars, char_dim]
        feats = []
        for i, (width, _) in enumerate(emb["filters"]):
            w = e[f"convolutions.{i}.weight"]  # [count, char_dim, width]
            conv = numpy.stack([numpy.einsum("kc,ock->o", x[p : p + width], w)
                                for p in range(max_chars - width + 1)]) + e[f"convolutions.{i}.bias"]
            act = numpy.tanh if emb["activation"] == "tanh" else (lambda v: numpy.maximum(v, 0.0))
            feats.append(act(conv.max(axis=0)))
        h = numpy.concatenate(feats)
        n = len(h)
        for k in range(emb["n_highway"]):
            z = e[f"highways._layers.{k}.weight"] @ h + e[f"highways._layers.{k}.bias"]
            gate = sigmoid(z[n:])
            h = gate * h + (1 - gate) * numpy.maximum(z[:n], 0.0)
        if emb["word_dim"] > 0:
            word = e["word_emb_layer.embedding.weight"][words.get(token, words["<oov>"])]
            h = numpy.concatenate([word, h])
        vectors.append(e["projection.weight"] @ h + e["projection.bias"])
    x = numpy.stack(vectors)
    c_dim, clip_c, clip_p = enc["dim"], enc["cell_clip"], enc["proj_clip"]
    layers = [numpy.concatenate([x, x], axis=-1)]
    inputs = {"forward": x, "backward": x}
    for layer in range(enc["n_layers"]):
        outs = {}
        for name in ("forward", "backward"):
            cell = {k.split(".", 1)[1]: v.astype(numpy.float64) for k, v in encoder.items()
                    if k.startswith(f"{name}_layer_{layer}.")}
            seq = inputs[name] if name == "forward" else inputs[name][::-1]
            h, c, out = numpy.zeros(enc["projection_dim"]), numpy.zeros(c_dim), []
            for t in range(len(seq)):
                z = cell["input_linearity.weight"] @ seq[t] + cell["state_linearity.weight"] @ h + cell["state_linearity.bias"]
                i, f, g, o = numpy.split(z, 4)  # its order: input, forget, memory, output
                c = sigmoid(i) * numpy.tanh(g) + sigmoid(f) * c
                if clip_c:
                    c = numpy.clip(c, -clip_c, clip_c)
                h = cell["state_projection.weight"] @ (sigmoid(o) * numpy.tanh(c))
                if clip_p:
                    h = numpy.clip(h, -clip_p, clip_p)
                out.append(h)
            result = numpy.stack(out)
            result = result if name == "forward" else result[::-1]
            if layer > 0:
                result = result + inputs[name]
            outs[name] = result
        layers.append(numpy.concatenate([outs["forward"], outs["backward"]], axis=-1))
        inputs = outs
    return numpy.stack(layers)[:, 1:-1]
