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

    def _flat_step(self, closure=None):
        """For ``tg.compile``: the replay of a plain step (no closure, momentum, weight
        decay or maximize) as its array updates alone, ``w += -lr * g`` (``_add_scaled``
        with each small parameter's scratch looked up in advance), with ``lr`` read
        afresh; None for any other step.  A replay whose groups are no longer plain, or
        hold other parameters, calls step()."""
        groups = self.param_groups
        if closure is not None or not all(_plain(g) for g in groups):
            return None
        layout = [(g, g["params"], len(g["params"])) for g in groups]
        plan = [
            (g, [(p, self._scratch(p._array, 1) if p._array.size <= self._BLOCK else None)
                 for p in ps])
            for g, ps, _ in layout
        ]  # fmt: skip
        full = SGD.step.__wrapped__

        def replay():
            if len(groups) != len(layout) or not all(
                _plain(g) and g["params"] is ps and len(ps) == n for g, ps, n in layout
            ):
                full(self)
                return
            for group, params in plan:
                alpha = -float(group["lr"])
                for p, s in params:
                    grad = p.grad
                    if grad is None:
                        continue
                    self._add_scaled(*self._arrays(p), alpha, s)

        return replay

    @effect(flat=lambda self, closure=None: self._flat_step(closure))
    def step(self, closure=None):
        """One SGD update of every parameter that has a gradient; returns the closure's loss."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            mu = float(group["momentum"])
            damp = float(group["dampening"])
            wd = float(group["weight_decay"])
            nesterov = bool(group["nesterov"])
            maximize = bool(group["maximize"])
            plain = not maximize and wd == 0
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                w, g = self._arrays(p)
                if not plain:
                    g = self._direction(w, g, maximize, wd)
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
                            s = self._scratch(w, 1)
                            np.multiply(g, 1.0 - damp, out=s)
                            b += s
                    b = buf._array
                    if nesterov:
                        s = self._scratch(w, 1)
                        np.multiply(b, mu, out=s)
                        s += g
                        g = s
                    else:
                        g = b
                self._add_scaled(w, g, -lr)
        return loss


def _plain(group):
    return group["momentum"] == 0 and group["weight_decay"] == 0 and not group["maximize"]


def _check(lr, momentum, weight_decay, nesterov, dampening):
    if lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if momentum < 0.0:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if weight_decay < 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
