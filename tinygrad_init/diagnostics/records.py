"""What a Monitor records: one :class:`Record` per node of the structure per step.

Fields (None where they do not apply), all computed in float64:

- identity: ``step``; ``index`` (1-based execution order: the one numbering that the
  summary table, the diagrams and the verdict share); ``name`` (module name, ``blocks.3.+``
  for a merge); ``kind`` (``layer``, ``norm``, ``merge``, ``attention``, ``module``);
  ``layer`` (e.g. ``Linear(32->32)``); ``activation`` (attached modules, ``ReLU``);
  ``block`` (the residual block it belongs to); ``on_stream`` (on the spine);
- weights: ``fan_in``, ``fan_out``, ``weight_std``, ``weight_norm``, ``weight_var``
  (``mean(W^2)``), ``bias_ms``, ``gain`` (``sqrt(fan_in * Var[W])``), ``weight_zero``;
  ``weight_grad_norm``, ``weight_grad_rms``, ``weight_grad_finite``; ``update_ratio``
  (``||W_t - W_prev|| / ||W_prev||`` between two recorded steps);
- forward: ``in_ms`` (mean square of the input), ``preact_mean`` / ``preact_std`` (the
  head's output), ``act_mean`` / ``act_std`` / ``act_rms`` (the node's output),
  ``saturated`` / ``dead`` fractions, ``act_finite``, ``output_zero``; attention:
  ``entropy`` (mean row entropy / log(keys)), ``max_weight``, ``keys``, ``logit_std``;
- backward: ``grad_norm``, ``grad_std``, ``grad_rms``, ``grad_finite`` (the gradient
  reaching the node's output);
- judgement (filled by :mod:`~tinygrad_init.diagnostics.rules`): ``grad_ratio``,
  ``weight_grad_ratio``, ``act_ratio``, ``grad_step`` / ``act_step`` (the factor across
  this node along the spine), ``backward_status``, ``forward_status``, ``status``,
  ``note``, ``zero_below`` (for a node that no gradient can reach: the node downstream
  whose exactly-zero weights cut it off); theory
  (:mod:`~tinygrad_init.diagnostics.theory`): ``theory_preact_std``, ``theory_act_std``,
  ``theory_grad_std``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..init import _calculate_fan_in_and_fan_out
from .status import norm, rms

__all__ = ["Record", "record_of", "describe"]


@dataclass
class Record:
    step: int
    index: int
    name: str
    kind: str
    layer: str
    activation: str = ""
    block: str | None = None
    on_stream: bool = False
    fan_in: int | None = None
    fan_out: int | None = None
    weight_std: float | None = None
    weight_norm: float | None = None
    weight_var: float | None = None
    bias_ms: float = 0.0
    gain: float | None = None
    weight_zero: bool = False
    weight_grad_norm: float | None = None
    weight_grad_rms: float | None = None
    weight_grad_finite: bool = True
    update_ratio: float | None = None
    in_ms: float | None = None
    preact_mean: float | None = None
    preact_std: float | None = None
    act_mean: float | None = None
    act_std: float | None = None
    act_rms: float | None = None
    saturated: float | None = None
    dead: float | None = None
    act_finite: bool = True
    output_zero: bool = False
    entropy: float | None = None
    max_weight: float | None = None
    keys: int | None = None
    logit_std: float | None = None
    grad_norm: float | None = None
    grad_std: float | None = None
    grad_rms: float | None = None
    grad_finite: bool = True
    grad_ratio: float | None = None
    weight_grad_ratio: float | None = None
    act_ratio: float | None = None
    grad_step: float | None = None
    act_step: float | None = None
    backward_status: str = "none"
    forward_status: str = "none"
    status: str = "none"
    note: str = ""
    zero_below: str | None = None
    theory_preact_std: float | None = None
    theory_act_std: float | None = None
    theory_grad_std: float | None = None

    def to_dict(self):
        return asdict(self)

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]


def describe(node):
    """``Linear(32->32)``, ``Conv2d(3->8, 3x3)``, ``LayerNorm``, ``+`` (merge), ``softmax``."""
    if node.kind == "merge":
        return "+"
    if node.kind == "attention":
        return "attention weights"
    kind = type(node.module).__name__
    w = node.weight
    if w is None:
        return kind
    if w.ndim == 2:
        return f"{kind}({w.shape[1]}->{w.shape[0]})"
    return f"{kind}({w.shape[1]}->{w.shape[0]}, {'x'.join(str(n) for n in w.shape[2:])})"


def record_of(node, step, index, prev_weight):
    """The :class:`Record` of ``node`` (a :class:`~.structure.Node`) at ``step``."""
    head, tail = node.head, node.probes[-1]
    rec = Record(
        step=step,
        index=index,
        name=node.key,
        kind=node.kind,
        layer=describe(node),
        activation="+".join(type(m).__name__ for m in node.attached),
        block=node.block,
        on_stream=node.on_spine,
        in_ms=head.in_ms,
        preact_mean=head.act.mean,
        preact_std=head.act.std,
        act_mean=tail.act.mean,
        act_std=tail.act.std,
        act_rms=tail.act.rms,
        act_finite=all(p.act.finite for p in node.probes),
        output_zero=tail.act.all_zero,
    )
    for p in node.probes:
        rec.saturated = p.act.saturated if p.act.saturated is not None else rec.saturated
        rec.dead = p.act.dead if p.act.dead is not None else rec.dead
    if head.attention is not None:
        a = head.attention
        rec.entropy, rec.max_weight, rec.keys, rec.logit_std = (
            a.entropy,
            a.max_weight,
            a.keys,
            a.logit_std,
        )
    if tail.grad is not None:
        g = tail.grad
        rec.grad_norm, rec.grad_std, rec.grad_rms, rec.grad_finite = g.norm, g.std, g.rms, g.finite
    w = node.weight
    if w is not None:
        wd = np.asarray(w._array, dtype=np.float64)
        rec.fan_in, rec.fan_out = _calculate_fan_in_and_fan_out(w.shape)
        rec.weight_std, rec.weight_norm = float(np.std(wd)), norm(wd)
        rec.weight_var = float(np.mean(wd * wd))
        rec.weight_zero = not bool(np.any(wd))
        rec.gain = math.sqrt(rec.fan_in * rec.weight_var)
        b = node.module._parameters.get("bias")
        if b is not None and b._array.size:
            rec.bias_ms = float(np.mean(np.asarray(b._array, np.float64) ** 2))
        if w.grad is not None:
            gd = np.asarray(w.grad._array, dtype=np.float64)
            rec.weight_grad_norm, rec.weight_grad_rms = norm(gd), rms(gd)
            rec.weight_grad_finite = bool(np.isfinite(gd).all())
        if prev_weight is not None and prev_weight.shape == wd.shape:
            base = norm(prev_weight)
            rec.update_ratio = norm(wd - prev_weight) / base if base > 0 else None
    return rec
