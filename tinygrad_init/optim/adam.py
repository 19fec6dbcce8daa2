"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

import math

import numpy as np

from ..replay import effect
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (``torch.optim.Adam``).

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``::

        g  = -g                          if maximize
        g  = g + wd * p                  if wd != 0 (L2 penalty added to the gradient)
        m  = beta1 * m + (1 - beta1) * g             (state "exp_avg")
        v  = beta2 * v + (1 - beta2) * g * g         (state "exp_avg_sq")
        v_max = max(v_max, v)            if amsgrad  (state "max_exp_avg_sq")
        denom = sqrt(v_max or v) / sqrt(1 - beta2 ** t) + eps
        p  = p - lr / (1 - beta1 ** t) * m / denom

    With ``decoupled_weight_decay=True`` the penalty is applied to the weights instead of
    the gradient (``p = p * (1 - lr * wd)`` before the update), which is AdamW.
    AMSGrad is Reddi et al. (2018), "On the Convergence of Adam and Beyond".
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
    ):
        _check(lr, betas, eps, weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check(group["lr"], group["betas"], group["eps"], group["weight_decay"])

    @effect(flat=Optimizer._flat_step)
    def step(self, closure=None):
        """One Adam update of every parameter that has a gradient; returns the closure's loss."""
        return self._step(closure)

    @staticmethod
    def _hyper(group):
        """A group's hyper-parameters in the order ``Adam._update`` takes them."""
        beta1, beta2 = (float(b) for b in group["betas"])
        return (
            float(group["lr"]),
            beta1,
            beta2,
            float(group["eps"]),
            float(group["weight_decay"]),
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group.get("decoupled_weight_decay", False)),
        )

    @staticmethod
    def _uses_direction(group):
        decoupled = bool(group.get("decoupled_weight_decay", False))
        return bool(group["maximize"]) or (float(group["weight_decay"]) != 0 and not decoupled)

    def _update(self, p, lr, beta1, beta2, eps, wd, amsgrad, maximize, decoupled, d=None, s=None):
        """The update of one parameter (the formula in the class docstring), in place;
        ``d``, ``s``: its scratch arrays (``_scratches``) when the caller has them."""
        w, g = self._arrays(p)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(p)
            state["exp_avg_sq"] = self._zeros_state(p)
            if amsgrad:
                state["max_exp_avg_sq"] = self._zeros_state(p)
        if wd != 0 and decoupled:
            w *= 1.0 - lr * wd
            g = self._direction(w, g, maximize, 0.0, d)
        else:
            g = self._direction(w, g, maximize, wd, d)
        state["step"] += 1
        t = state["step"]
        m = state["exp_avg"]._array
        v = state["exp_avg_sq"]._array
        if s is None:
            s = self._scratch(w, 1)
        self._lerp(m, g, 1.0 - beta1, s)  # m = beta1 * m + (1 - beta1) * g
        self._decay_square(v, g, beta2, s)
        if amsgrad:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = self._zeros_state(p)
            v_max = state["max_exp_avg_sq"]._array
            np.maximum(v_max, v, out=v_max)
            v = v_max
        step_size = lr / (1.0 - beta1**t)
        np.sqrt(v, out=s)
        s /= math.sqrt(1.0 - beta2**t)
        s += eps
        np.divide(m, s, out=s)
        s *= step_size
        w -= s


class AdamW(Adam):
    r"""Adam with decoupled weight decay (``torch.optim.AdamW``).

    The same update as :class:`Adam`, except that weight decay shrinks the weights
    directly instead of being added to the gradient::

        p = p * (1 - lr * wd)
        ... then the Adam update of p with the raw gradient g

    Note the default ``weight_decay=1e-2`` (PyTorch's).
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


def _check(lr, betas, eps, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
