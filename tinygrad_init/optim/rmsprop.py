"""RMSprop (Hinton, Coursera lecture 6e), with Graves' (2013) centered variant."""

from __future__ import annotations

import numpy as np

from ..replay import effect
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (``torch.optim.RMSprop``).

    For each parameter ``p`` with gradient ``g``, smoothing constant ``alpha``::

        g   = -g                                 if maximize
        g   = g + wd * p                         if wd != 0 (L2 penalty)
        v   = alpha * v + (1 - alpha) * g * g    (state "square_avg")
        gm  = alpha * gm + (1 - alpha) * g       if centered (state "grad_avg")
        avg = sqrt(v - gm * gm) + eps            if centered, else  sqrt(v) + eps
        b   = mu * b + g / avg ;  p = p - lr * b if mu > 0 (state "momentum_buffer")
        p   = p - lr * g / avg                   otherwise

    Note that ``eps`` is added outside the square root, as in PyTorch (TensorFlow adds it
    inside).
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        *,
        maximize=False,
    ):
        _check(lr, alpha, eps, weight_decay, momentum)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check(
            group["lr"],
            group["alpha"],
            group["eps"],
            group["weight_decay"],
            group["momentum"],
        )

    @effect(flat=Optimizer._flat_step)
    def step(self, closure=None):
        """One RMSprop update of every parameter with a gradient; returns the closure's loss."""
        return self._step(closure)

    @staticmethod
    def _hyper(group):
        """A group's hyper-parameters in the order ``RMSprop._update`` takes them."""
        return (
            float(group["lr"]),
            float(group["alpha"]),
            float(group["eps"]),
            float(group["weight_decay"]),
            float(group["momentum"]),
            bool(group["centered"]),
            bool(group["maximize"]),
        )

    @staticmethod
    def _uses_direction(group):
        return bool(group["maximize"]) or float(group["weight_decay"]) != 0

    def _update(self, p, lr, alpha, eps, wd, mu, centered, maximize, d=None, s=None):
        """The update of one parameter (the formula in the class docstring), in place;
        ``d``, ``s``: its scratch arrays (``_scratches``) when the caller has them."""
        w, g = self._arrays(p)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["square_avg"] = self._zeros_state(p)
            if mu > 0:
                state["momentum_buffer"] = self._zeros_state(p)
            if centered:
                state["grad_avg"] = self._zeros_state(p)
        g = self._direction(w, g, maximize, wd, d)
        state["step"] += 1
        sq = state["square_avg"]._array
        if s is None:
            s = self._scratch(w, 1)
        self._decay_square(sq, g, alpha, s)
        if centered:
            if "grad_avg" not in state:
                state["grad_avg"] = self._zeros_state(p)
            ga = state["grad_avg"]._array
            self._lerp(ga, g, 1.0 - alpha, s)  # ga = alpha * ga + (1 - alpha) * g
            np.multiply(ga, ga, out=s)
            np.subtract(sq, s, out=s)
            np.sqrt(s, out=s)
        else:
            np.sqrt(sq, out=s)
        s += eps
        np.divide(g, s, out=s)
        if mu > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = self._zeros_state(p)
            buf = state["momentum_buffer"]._array
            buf *= mu
            buf += s
            np.multiply(buf, lr, out=s)
        else:
            s *= lr
        w -= s


def _check(lr, alpha, eps, weight_decay, momentum):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= momentum:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if not 0.0 <= alpha:
        raise ValueError(f"Invalid alpha value: {alpha}")
