"""``Dropout``: random zeroing in training mode, the identity in evaluation mode."""

from __future__ import annotations

from ... import functional as F
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode each element is zeroed with probability ``p`` and the survivors
    are scaled by ``1 / (1 - p)`` (inverted dropout, Srivastava et al. 2014), so
    E[output] = input; in evaluation mode (``.eval()``) it is the identity.

    ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor.
    ``generator`` (a ``np.random.Generator``) drives the masks (the default generator when
    None).
    """

    def __init__(self, p=0.5, inplace=False, *, generator=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, input):
        return F.dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
