"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from ..replay import effect
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (``torch.optim.SGD``).

    For each parameter ``p`` with gradient ``g``, learning rate ``lr``, momentum ``mu``,
    dampening ``tau`` and weight decay ``wd``::

        g = -g                        if maximize
        g = g + wd * p                if wd != 0          (L2 penalty)
        b = g                         on the first step   (momentum buffer, when mu != 0)
        b = mu * b + (1 - tau) * g    afterwards
        g = g + mu * b                if nesterov, else  g = b
        p = p - lr * g

    Nesterov momentum is the formulation of Sutskever et al. (2013) as PyTorch implements
    it; it requires ``momentum > 0`` and ``dampening == 0``.  The buffer is stored in
    ``state[p]["momentum_buffer"]``.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        maximize=False,
    ):
        _check(lr, momentum, weight_decay, nesterov, dampening)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check(
            group["lr"],
            group["momentum"],
            group["weight_decay"],
            group["nesterov"],
            group["dampening"],
        )

    @effect(flat=Optimizer._flat_step)
    def step(self, closure=None):
        """One SGD update of every parameter that has a gradient; returns the closure's loss."""
        return self._step(closure)

    @staticmethod
    def _hyper(group):
        """A group's hyper-parameters in the order ``SGD._update`` takes them."""
        return (
            float(group["lr"]),
            float(group["momentum"]),
            float(group["dampening"]),
            float(group["weight_decay"]),
            bool(group["nesterov"]),
            bool(group["maximize"]),
        )

    _WHOLE_SCRATCH = False  # _add_scaled updates large parameters block by block

    @staticmethod
    def _uses_direction(group):
        return bool(group["maximize"]) or float(group["weight_decay"]) != 0

    def _update_group(self, hyper, params, scratches=None):
        """Without momentum, weight decay or maximize, SGD is ``p -= lr * g``: one loop
        over the group (``_descend``) instead of an ``_update`` call per parameter."""
        lr, mu, _, wd, _, maximize = hyper
        if mu == 0 and wd == 0 and not maximize:
            self._descend(params, -lr, scratches)
        else:
            super()._update_group(hyper, params, scratches)

    def _update(self, p, lr, mu, damp, wd, nesterov, maximize, d=None, s=None):
        """The update of one parameter (the formula in the class docstring), in place;
        ``d``, ``s``: its scratch arrays (``_scratches``) when the caller has them."""
        w, g = self._arrays(p)
        if maximize or wd != 0:
            g = self._direction(w, g, maximize, wd, d)
        if mu != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = self._state_copy(p, g)
                state["momentum_buffer"] = buf
            else:
                b = buf._array
                b *= mu
                if damp == 0:
                    b += g
                else:
                    t = self._scratch(w, 1) if s is None else s
                    np.multiply(g, 1.0 - damp, out=t)
                    b += t
            b = buf._array
            if nesterov:
                t = self._scratch(w, 1) if s is None else s
                np.multiply(b, mu, out=t)
                t += g
                g = t
            else:
                g = b
        self._add_scaled(w, g, -lr, s)


def _check(lr, momentum, weight_decay, nesterov, dampening):
    if lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if momentum < 0.0:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if weight_decay < 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
