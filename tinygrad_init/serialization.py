"""Saving and loading state dicts as safetensors files (``tg.save`` / ``tg.load``).

The format is Hugging Face's safetensors: an 8-byte little-endian header length, a JSON
header (name -> dtype, shape, byte offsets) and the raw little-endian data.  Loading
never unpickles anything, so a checkpoint cannot run code, and the files open in PyTorch
with ``safetensors.torch.load_file``.

Files are written atomically: the bytes go to a temporary file in the target's
directory, which is flushed to disk and then renamed over the target with
``os.replace``.  A failure at any point leaves an earlier file at the path untouched and
removes the temporary file.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ._io import atomic_write
from .tensor import Tensor

__all__ = ["save", "load"]

# dtypes the safetensors format can hold that numpy has
_SUPPORTED = frozenset(
    np.dtype(t)
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)


def save(state_dict, path, metadata=None):
    """Write ``state_dict`` (name -> Tensor or numpy array) to ``path`` as safetensors.

    Keys must be strings and values Tensors or numpy arrays of bool, int, uint or float
    dtype; a nested dict (such as an optimizer's state dict) is a TypeError: flatten it to
    ``"prefix.name" -> tensor`` first.  ``metadata`` is an optional ``str -> str`` dict
    stored in the header.  The write is atomic (temporary file, then ``os.replace``).
    """
    arrays = _to_arrays(state_dict)
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise TypeError("save: metadata must be a dict of str -> str")
        metadata = dict(metadata)
    import safetensors.numpy  # on use: importing tinygrad_init needs only numpy

    try:
        data = safetensors.numpy.save(arrays, metadata=metadata)
    except Exception as e:  # the library's own error type; report it as a bad value
        raise ValueError(f"save: could not serialize the state dict: {e}") from e
    atomic_write(path, data, "save")


def load(path):
    """Read a safetensors file: an OrderedDict name -> Tensor, in the order of the file.

    Raises FileNotFoundError (naming the path) if there is no such file and ValueError if
    the file is not in the safetensors format.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(2, "load: no such file", path) from None
    names = _names_in_file_order(data, path)
    import safetensors.numpy

    try:
        arrays = safetensors.numpy.load(data)
    except Exception as e:
        raise ValueError(f"load: {path!r} is not a valid safetensors file: {e}") from None
    return OrderedDict((name, Tensor(arrays[name])) for name in names)


def _to_arrays(state_dict):
    """Validate a state dict and return name -> contiguous numpy array."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"save: expected a dict mapping names to tensors, got {type(state_dict).__name__}"
        )
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {type(key).__name__} {key!r}")
        if key == "__metadata__":
            raise ValueError(
                "save: '__metadata__' is reserved by the safetensors format; pass metadata= instead"
            )
        if isinstance(value, Tensor):
            array = value._array
        elif isinstance(value, (np.ndarray, np.generic)):
            array = np.asarray(value)
        elif isinstance(value, Mapping):
            raise TypeError(
                f"save: keys must map to tensors, but {key!r} maps to a nested "
                "dict; flatten it to 'prefix.name' -> tensor entries first"
            )
        else:
            raise TypeError(
                f"save: keys must map to tensors (Tensor or numpy array), but "
                f"{key!r} maps to {type(value).__name__}"
            )
        if array.dtype not in _SUPPORTED:
            raise TypeError(
                f"save: {key!r} has dtype {array.dtype}, which safetensors cannot "
                f"store (use bool, int, uint or float)"
            )
        arrays[key] = array if array.flags.c_contiguous else np.array(array, order="C")
    return arrays


def _names_in_file_order(data, path):
    """Parse the header and return tensor names ordered by their position in the data."""

    def bad(why):
        return ValueError(f"load: {path!r} is not a safetensors file ({why})")

    if len(data) < 8:
        raise bad(f"{len(data)} bytes, too short for the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or 8 + n > len(data):
        raise bad(f"header length {n} does not fit a file of {len(data)} bytes")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, ValueError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start = int(info["data_offsets"][0])
        except (TypeError, KeyError, IndexError, ValueError):
            raise bad(f"entry {name!r} has no data_offsets") from None
        entries.append((start, name))
    entries.sort()
    return [name for _, name in entries]
