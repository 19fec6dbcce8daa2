"""Loss modules (``torch.nn`` names); each calls the function of the same name in
``tinygrad_init.functional``.  ``reduction`` is one of 'none', 'mean' (default), 'sum'
and is checked when the loss is built."""

from __future__ import annotations

import numbers

import numpy as np

from ... import functional as F
from ...tensor import Tensor
from .module import Module

__all__ = [
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]

_REDUCTIONS = ("none", "mean", "sum")


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of "
                f"{', '.join(repr(r) for r in _REDUCTIONS)}, got {reduction!r}"
            )
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional per-class ``weight``, registered as a buffer (as PyTorch)."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _as_buffer(weight))


def _as_buffer(value):
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value))


class MSELoss(_Loss):
    """loss_i = (x_i - y_i)^2, reduced by ``reduction``."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """loss_i = |x_i - y_i|, reduced by ``reduction``."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """loss_i = 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta), d = x_i - y_i."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        if not isinstance(delta, numbers.Real) or delta <= 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta!r}")
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits against class indices or class probabilities:
    loss_n = -w[y_n] log softmax(x_n)[y_n] (with ``label_smoothing`` ls the target is
    (1 - ls) onehot(y) + ls / C); 'mean' divides by the summed weights of the targets that
    are not ``ignore_index``."""

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index=-100,
        reduce=None,
        reduction="mean",
        label_smoothing=0.0,
    ):
        if size_average is not None or reduce is not None:
            raise TypeError(
                "CrossEntropyLoss: size_average and reduce are deprecated; use reduction="
            )
        super().__init__(weight, reduction)
        if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}"
            )
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    """loss_n = -w[y_n] x[n, y_n] for log-probabilities x; 'mean' divides by the summed
    weights of the targets that are not ``ignore_index``."""

    def __init__(
        self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"
    ):
        if size_average is not None or reduce is not None:
            raise TypeError("NLLLoss: size_average and reduce are deprecated; use reduction=")
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCELoss(_WeightedLoss):
    """loss_i = -w_i (y_i log x_i + (1 - y_i) log(1 - x_i)) for probabilities x (each log
    clamped to >= -100, as PyTorch)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        if size_average is not None or reduce is not None:
            raise TypeError("BCELoss: size_average and reduce are deprecated; use reduction=")
        super().__init__(weight, reduction)

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """loss_i = -w_i (p y_i log sigmoid(x_i) + (1 - y_i) log(1 - sigmoid(x_i))) for logits
    x, p = ``pos_weight``; computed stably from the logits."""

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
    ):
        if size_average is not None or reduce is not None:
            raise TypeError(
                "BCEWithLogitsLoss: size_average and reduce are deprecated; use reduction="
            )
        super().__init__(reduction)
        self.register_buffer("weight", _as_buffer(weight))
        self.register_buffer("pos_weight", _as_buffer(pos_weight))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
