"""Datasets and mini-batches, as ``torch.utils.data`` (in the calling process only).

``DataLoader(dataset, batch_size, shuffle, drop_last, collate_fn, generator)`` yields
batches collated as PyTorch's ``default_collate`` does: tensors and numpy arrays are
stacked, Python numbers become a tensor (int64 for ints, float64 for floats, as in
PyTorch), and tuples, lists and dicts are collated field by field.  Shuffling draws a
permutation from ``generator`` (the default generator, seeded by ``tg.manual_seed``, when
None).  Worker processes are not provided: ``num_workers`` other than 0 raises.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from ..tensor import Tensor, default_generator, stack

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "DataLoader",
    "default_collate",
]


class Dataset:
    """Base class of map-style datasets: ``__getitem__(i)`` and ``__len__``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


class TensorDataset(Dataset):
    """Sample i is ``tuple(t[i] for t in tensors)``; all tensors share their first size."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {k} is {type(t).__name__}, not a Tensor")
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(
                f"Size mismatch between tensors: first dims {sizes} (every tensor needs the "
                "same size in dim 0)"
            )
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Non-overlapping random ``Subset``s of the given lengths (or fractions summing to 1;
    the remainder is dealt one by one from the first subset on, as PyTorch does)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(
            f"Sum of input lengths ({sum(lengths)}) does not equal the length of the input "
            f"dataset ({n})"
        )
    order = (generator or default_generator()).permutation(n)
    starts = np.cumsum([0] + lengths[:-1])
    return [Subset(dataset, order[s : s + m].tolist()) for s, m in zip(starts, lengths)]


def default_collate(batch):
    """Stack a list of samples into a batch (``torch.utils.data.default_collate``)."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch)
    if isinstance(first, np.ndarray):
        return Tensor(np.stack(batch))
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(first, str | bytes):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
        return type(first)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(first, Sequence):
        if len({len(sample) for sample in batch}) != 1:
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(f)) for f in zip(*batch)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(
        "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
        f"lists; found {type(first).__name__}"
    )


class DataLoader:
    """Iterate over ``dataset`` in mini-batches (``torch.utils.data.DataLoader``).

    ``batch_size=None`` yields single samples uncollated.  With the default collate, a
    ``TensorDataset`` is batched by one indexing per tensor rather than sample by sample
    (the same values).  ``pin_memory`` has no effect on the CPU and is accepted.
    """

    def __init__(
        self,
        dataset,
        batch_size=1,
        shuffle=False,
        sampler=None,
        num_workers=0,
        collate_fn=None,
        pin_memory=False,
        drop_last=False,
        generator=None,
    ):
        if num_workers != 0:
            raise ValueError(
                f"DataLoader: num_workers={num_workers} is not supported (batches are made "
                "in the calling process); use num_workers=0"
            )
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0
        ):
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, bool(shuffle)
        self.sampler, self.drop_last, self.generator = sampler, bool(drop_last), generator
        self.collate_fn = collate_fn
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def _indices(self):
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            return (self.generator or default_generator()).permutation(n)
        return np.arange(n)

    def __iter__(self):
        indices = self._indices()
        if self.batch_size is None:
            for i in indices:
                yield self.dataset[int(i)]
            return
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is None
        collate = self.collate_fn or default_collate
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start : start + self.batch_size]
            if len(chunk) < self.batch_size and self.drop_last:
                return
            if fast:
                yield self.dataset[np.asarray(chunk, dtype=np.int64)]
            else:
                yield collate([self.dataset[int(i)] for i in chunk])

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
