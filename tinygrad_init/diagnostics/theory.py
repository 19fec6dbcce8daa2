"""Mean-field predictions beside the measurements, along the structure's DAG.

Signal propagation (Poole et al. 2016, Schoenholz et al. 2017; the argument of Glorot &
Bengio 2010 and He et al. 2015), node by node in execution order, starting from measured
inputs wherever a node's input cannot be predicted::

    q_l          = fan_in * Var[W_l] * E[x_{l-1}^2] + E[b_l^2]     (a layer's pre-activation)
    E[x_l^2]     = E[phi(z)^2],  z ~ N(0, q_l)                      (its activation)
    E[x^2]       = E[gamma^2] + E[beta^2]                           (after a normalization layer)
    Var(x_l+1)   = Var(x_l) + Var(branch_l)                         (a residual merge)

and backward, from the output node (its measured gradient) toward the input, summing over
the users of each node (a stream point feeds the next merge and the next branch)::

    Var[g_in]    = fan_out * Var[W] * E[phi'(z)^2] * Var[g_out]      (through a layer)
    Var[g_in]    = E[gamma^2] / Var[x_in] * Var[g_out]               (through a norm layer:
                                                                      divided by its input's var)
    Var[g_in]    = Var[g_out]                                        (into each input of a merge)

A branch whose output weight is zero contributes nothing at init.  ``Var[W]`` is the
weight's empirical second moment (at step 0 the variance the init drew).
"""

from __future__ import annotations

import math

import numpy as np

from .activations import gaussian_moments, lookup

__all__ = ["predict"]

_PASS = ("Flatten", "Dropout", "Identity", "Unflatten")


def _through(modules, ms, mean=0.0):
    """(mean, second moment) after the attached modules, and the product of E[phi'^2]."""
    chi = 1.0
    for m in modules:
        spec = lookup(m)
        if spec is not None:
            q = ms
            mean, ms, d2 = gaussian_moments(spec.fn(m), q)
            chi *= d2
        elif type(m).__name__ not in _PASS:
            return None, None, None
    return mean, ms, chi


def _affine_ms(module):
    """E[gamma^2] + E[beta^2] of a normalization layer (1 without an affine part)."""
    p = getattr(module, "_parameters", {})
    w, b = p.get("weight"), p.get("bias")
    g2 = float(np.mean(np.asarray(w._array, np.float64) ** 2)) if w is not None else 1.0
    b2 = float(np.mean(np.asarray(b._array, np.float64) ** 2)) if b is not None else 0.0
    return g2, b2


def predict(structure, records):
    """Fill ``theory_preact_std``, ``theory_act_std`` and ``theory_grad_std``."""
    by = {r.name: r for r in records}
    nodes = structure.nodes
    ms_of, chi_of, q_of = {}, {}, {}
    for key in structure.order:
        node, r = nodes[key], by.get(key)
        if r is None:
            continue
        if node.preds == ["input"] and r.in_ms is not None:
            ms_of.setdefault("input", r.in_ms)  # the measured input, for the first merge
        known = [ms_of.get(p) for p in node.preds if p != "input"]
        ms_in = known[0] if len(known) == 1 and known[0] is not None else r.in_ms
        ms = None
        if node.kind == "layer" and ms_in is not None:
            q = r.fan_in * r.weight_var * ms_in + r.bias_ms
            q_of[key] = q
            r.theory_preact_std = math.sqrt(q)
            mean, ms, chi_of[key] = _through(node.attached, q)
        elif node.kind == "norm":
            g2, b2 = _affine_ms(node.module)
            q_of[key] = g2 + b2
            mean, ms, chi_of[key] = _through(node.attached, g2 + b2)
        elif node.kind == "merge":
            parts = [ms_of.get(p) for p in node.preds]
            if parts and all(k is not None for k in parts):
                mean, ms = 0.0, sum(parts)
        if ms is not None:
            ms_of[key] = ms
            r.theory_act_std = math.sqrt(max(ms - mean * mean, 0.0))
    var_of = {}
    for key in reversed(structure.order):
        node, r = nodes[key], by.get(key)
        if r is None:
            continue
        if not node.succs:
            var = r.grad_std**2 if r.grad_std is not None else None
        else:
            parts = [_back(nodes[s], by.get(s), var_of.get(s), chi_of.get(s)) for s in node.succs]
            var = sum(parts) if all(p is not None for p in parts) else None
        var_of[key] = var
        r.theory_grad_std = math.sqrt(var) if var is not None else None
    return records


def _back(node, r, var, chi):
    """Var of the gradient at ``node``'s input from the Var ``var`` at its output."""
    if var is None or r is None:
        return None
    if node.kind == "merge":
        return var
    if chi is None:
        return None
    if node.kind == "layer":
        return r.fan_out * r.weight_var * chi * var
    if node.kind == "norm" and r.in_ms:
        g2, _ = _affine_ms(node.module)
        return g2 / r.in_ms * chi * var
    return None
