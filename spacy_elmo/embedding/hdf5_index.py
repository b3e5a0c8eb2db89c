"""One HDF5 file per input file, as the old ``allennlp elmo`` wrote it, over the shard files: each line's
dataset is an external link into its shard (nothing is copied), and ``sentence_to_index`` is the shards'
maps merged in line order. h5py and every HDF5 reader follow the links transparently."""
import json
from pathlib import Path
from typing import Dict, List, Sequence

from ..files import commit, temporary
from .shards import Shard
from .writers import SENTENCE_TO_INDEX, require_h5py, write_sentence_to_index


def index_names(inputs: Sequence[str]) -> Dict[str, str]:
    """``<input stem>.hdf5`` for each input file (numbered when stems repeat)."""
    names: Dict[str, str] = {}
    taken = set()
    for path in dict.fromkeys(inputs):
        stem, n = Path(path).stem, 1
        name = f"{stem}.hdf5"
        while name in taken:
            n += 1
            name = f"{stem}-{n}.hdf5"
        taken.add(name)
        names[path] = name
    return names


def write_hdf5_indexes(output: Path, shards: Sequence[Shard], records: Sequence[dict]) -> Dict[str, str]:
    """Write the index files; returns ``{input file: index file name}``."""
    h5py = require_h5py()
    names = index_names([s.path for s in shards])
    for path, name in names.items():
        target = output / name
        tmp = temporary(target)
        merged: Dict[str, str] = {}
        with h5py.File(tmp, "w") as index:
            for shard, record in zip(shards, records):
                if shard.path != path:
                    continue
                with h5py.File(output / record["file"], "r") as part:
                    keys: List[str] = [k for k in part.keys() if k != SENTENCE_TO_INDEX]
                    merged.update(json.loads(part[SENTENCE_TO_INDEX][0]))
                for key in sorted(keys, key=int):
                    index[key] = h5py.ExternalLink(record["file"], key)
            write_sentence_to_index(index, merged)
        commit(tmp, target)
    return names
