"""``Embedding``: a lookup table of trainable vectors."""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ... import init as _init
from ...tensor import Tensor
from ._utils import check_positive_int, float_dtype, initialize
from .module import Module, Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """out[...] = weight[input[...]] for integer ``input``; weight has shape
    (num_embeddings, embedding_dim) and is initialized ~ N(0, 1) (``torch.nn.Embedding``).

    The row at ``padding_idx`` is zero-initialized and receives no gradient.
    ``weight_init`` / ``generator`` as in ``Linear``.  ``max_norm`` and sparse gradients are
    not supported.
    """

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        padding_idx=None,
        max_norm=None,
        norm_type=2.0,
        scale_grad_by_freq=False,
        sparse=False,
        dtype=None,
        *,
        weight_init=None,
        generator=None,
    ):
        super().__init__()
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim", "Embedding")
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError(
                "Embedding: max_norm, scale_grad_by_freq and sparse are not supported"
            )
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx must be within num_embeddings "
                    f"({num_embeddings}), got {padding_idx}"
                )
            padding_idx = padding_idx % num_embeddings
        self.padding_idx = padding_idx
        self.weight_init, self.generator = weight_init, generator
        dtype = float_dtype(dtype, "Embedding")
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype))
        self.reset_parameters()

    def reset_parameters(self):
        """weight ~ N(0, 1) (or ``weight_init``); the padding row is set to zero."""
        initialize(self.weight, self.weight_init, _init.normal_, self.generator)
        if self.padding_idx is not None:
            self.weight._array[self.padding_idx] = 0

    def forward(self, input):
        idx = np.asarray(input._array if isinstance(input, Tensor) else input)
        name = f"{self._get_name()}({self.extra_repr()})"
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{name}: expected integer indices, got dtype {idx.dtype}")
        n = self.num_embeddings
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx.max() if idx.max() >= n else idx.min()
            raise IndexError(f"{name}: index {bad} is out of range (valid indices are 0..{n - 1})")
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
