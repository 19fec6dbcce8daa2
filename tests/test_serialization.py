"""save / load: safetensors round trips, atomic writes, no pickle, clear errors."""

import json
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

from tinygrad_init import serialization
from tinygrad_init.serialization import load, save
from tinygrad_init.tensor import Tensor


def sample():
    rng = np.random.default_rng(0)
    return {
        "fc1.weight": Tensor(rng.standard_normal((4, 3)).astype(np.float32)),
        "fc1.bias": Tensor(np.zeros(4, dtype=np.float32)),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "double": rng.standard_normal((2, 2)),  # float64 numpy array
        "half": np.arange(3, dtype=np.float16),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T,  # not contiguous
    }


def as_array(v):
    return v.detach().numpy() if isinstance(v, Tensor) else np.asarray(v)


def leftovers(directory, name):
    return [f for f in os.listdir(directory) if f != name]


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path):
    sd = sample()
    path = tmp_path / "model.safetensors"
    save(sd, path)
    loaded = load(path)
    assert isinstance(loaded, OrderedDict)
    assert set(loaded) == set(sd)
    for name, value in sd.items():
        got = loaded[name]
        assert isinstance(got, Tensor) and not got.requires_grad
        assert got.dtype == as_array(value).dtype, name
        assert got.shape == as_array(value).shape, name
        np.testing.assert_array_equal(got.detach().numpy(), as_array(value))
    assert leftovers(tmp_path, "model.safetensors") == []


def test_load_returns_names_in_file_order(tmp_path):
    path = tmp_path / "m.safetensors"
    save(sample(), path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    by_offset = sorted(header, key=lambda k: (header[k]["data_offsets"][0], k))
    assert list(load(path)) == by_offset


def test_loaded_tensors_are_writable_and_independent(tmp_path):
    path = str(tmp_path / "m.safetensors")  # a str path works as well as a Path
    save({"w": np.ones(3, dtype=np.float32)}, path)
    a, b = load(path)["w"], load(path)["w"]
    a.numpy()[...] += 1
    np.testing.assert_array_equal(b.detach().numpy(), [1, 1, 1])


def test_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"a": np.zeros(2, dtype=np.float32)}, path)
    save({"b": np.ones(2, dtype=np.float32)}, path)
    assert list(load(path)) == ["b"]
    assert leftovers(tmp_path, "m.safetensors") == []


def test_file_is_plain_safetensors_readable_by_the_library(tmp_path):
    path = tmp_path / "m.safetensors"
    save(sample(), path)
    raw = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(raw["transposed"], sample()["transposed"])
    n = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{" and n < path.stat().st_size


def test_pytorch_loads_the_file(tmp_path):
    pytest.importorskip("torch")
    import safetensors.torch

    sd = sample()
    path = tmp_path / "m.safetensors"
    save(sd, path)
    theirs = safetensors.torch.load_file(str(path))
    assert set(theirs) == set(sd)
    for name, value in sd.items():
        t = theirs[name]
        assert tuple(t.shape) == as_array(value).shape
        np.testing.assert_array_equal(t.numpy(), as_array(value))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(sample(), path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    assert len(load(path)) == len(sample())


def test_a_pickle_file_is_rejected_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=r"evil.pt.* is not a safetensors file"):
        load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"short",
        (16).to_bytes(8, "little") + b"not json at all!",
        (2).to_bytes(8, "little") + b"[]",
        (1000).to_bytes(8, "little") + b"{}",
    ],
)
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"junk.bin.* is not a safetensors file"):
        load(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.ones(100, dtype=np.float32)}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"m.safetensors.* not a valid safetensors file"):
        load(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load(path)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (
            {"opt": {"lr": np.ones(1)}},
            TypeError,
            "keys must map to tensors, but 'opt' maps to a nested dict",
        ),
        ({"lr": 0.1}, TypeError, "keys must map to tensors .* but 'lr' maps to float"),
        ({"l": [1.0, 2.0]}, TypeError, "'l' maps to list"),
        ({3: np.ones(1)}, TypeError, "keys must be strings"),
        ({"o": np.array([object()])}, TypeError, "'o' has dtype object"),
        ({"c": np.ones(2, dtype=np.complex64)}, TypeError, "'c' has dtype complex64"),
        ({"__metadata__": np.ones(1)}, ValueError, "reserved"),
    ],
)
def test_bad_state_dicts_are_rejected_and_the_old_file_kept(tmp_path, bad, error, message):
    path = tmp_path / "m.safetensors"
    save({"good": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(error, match=message):
        save({"first": np.ones(2, dtype=np.float32), **bad}, path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "m.safetensors") == []


def test_not_a_dict():
    with pytest.raises(TypeError, match="expected a dict mapping names to tensors, got list"):
        save([np.ones(1)], "unused.safetensors")


def test_failure_in_the_middle_of_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save({"w": np.arange(1000, dtype=np.float32)}, path)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            return False

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(
        serialization.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode))
    )
    with pytest.raises(OSError, match="No space left on device"):
        save({"w": np.zeros(5000, dtype=np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "m.safetensors") == []
    np.testing.assert_array_equal(load(path)["w"].detach().numpy(), np.arange(1000))


def test_failure_at_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save({"w": np.ones(4, dtype=np.float32)}, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(serialization.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        save({"w": np.zeros(4, dtype=np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "m.safetensors") == []


def test_unwritable_destination(tmp_path):
    missing = tmp_path / "no_such_dir" / "m.safetensors"
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        save({"w": np.ones(1, dtype=np.float32)}, missing)
    assert os.listdir(tmp_path) == []


def test_metadata_is_stored_in_the_header(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.ones(1, dtype=np.float32)}, path, metadata={"epoch": "3"})
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"] == {"epoch": "3"}
    with pytest.raises(TypeError, match="metadata must be a dict of str -> str"):
        save({"w": np.ones(1, dtype=np.float32)}, path, metadata={"epoch": 3})
