"""The ratio rules and the verdict rules: small named functions, each testable on records.

**Ratios** (:func:`judge`), along the path that carries the signal:

- backward: ``grad_ratio = grad_rms / grad_rms(reference)``.  In a residual network the
  reference for the stem, the stream and the branches is the *end of the stream* (the
  last merge), so a final normalization layer, which divides the gradient by the
  stream's std, cannot turn an explosion into "vanishing"; the head after the stream and
  every node of a plain chain are measured against the output node, as the classic
  "ratio to the last layer";
- forward: ``act_ratio = act_rms / act_rms(first node of the spine)``, so activations that
  vanish or explode with depth are seen even where the gradient looks fine;
- along the spine, ``grad_step`` and ``act_step`` are the factors across one node.

``status`` is the worse of ``backward_status`` and ``forward_status``.  A node whose
gradient is exactly 0 because every path from it to the loss passes weights that are
exactly 0 (a branch's zero-initialised last layer or gate, Fixup's zero classifier:
``Structure.zero_below``) is ``zero-init``, not vanishing.

**Verdict rules** each take a :class:`Context` and return a :class:`Finding` (or None):
a status, the nodes it names, a cause computed from measured numbers, and remedies that
fit the structure (residual remedies for residual networks).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from .activations import lookup, recommended_init
from .status import (
    EXPLODING,
    HEALTHY,
    MISSING,
    NONFINITE,
    VANISHING,
    ZERO_INIT,
    ratio,
    worst,
)

__all__ = [
    "Context",
    "Finding",
    "judge",
    "stream_reference",
    "RULES",
    "OUTLIER",
    "SATURATED",
    "ENTROPY",
]

OUTLIER = 4.0  # a weighted layer whose gain is this far from its peers' median stands out
SATURATED = 0.5  # fraction of saturated units that makes a layer saturated
DEAD = 0.9  # fraction of dead units that makes a layer dead (He/ReLU at width 32: up to ~55%)
ENTROPY = 0.25  # attention rows below this fraction of the maximum entropy are saturated

RESIDUAL_REMEDIES = [
    "zero-initialise the last layer of each branch (Fixup, Zhang et al. 2019; "
    "SkipInit, De & Smith 2020), so every block starts as the identity",
    "scale each branch's output by 1/sqrt(number of blocks) as GPT-2 does "
    "(init.normal_ of the last layer with std / sqrt(2 * n_layers))",
    "gate each branch with a zero-initialised scalar, x + alpha * f(x) (ReZero, "
    "Bachlechner et al. 2020)",
]


@dataclass
class Finding:
    status: str
    part: str  # 'forward' or 'backward'
    names: list
    cause: str
    remedies: list = field(default_factory=list)


@dataclass
class Context:
    """What the verdict rules read: records in execution order, the structure, thresholds."""

    records: list
    structure: object
    thresholds: object

    def __post_init__(self):
        self.by_name = {r.name: r for r in self.records}

    @property
    def spine(self):
        if self.structure is None:
            return self.records
        return [self.by_name[k] for k in self.structure.spine if k in self.by_name]

    @property
    def merges(self):
        if self.structure is None:
            return []
        return [self.by_name[k] for k in self.structure.merges if k in self.by_name]

    @property
    def layers(self):
        return [r for r in self.records if r.kind == "layer"]

    def module(self, name):
        if self.structure is None or name not in self.structure.nodes:
            return None
        return self.structure.nodes[name].module

    def activation(self, name):
        node = self.structure.nodes.get(name) if self.structure is not None else None
        return node.activation if node is not None else None


# ----------------------------------------------------------------------------------------
# Ratios and statuses


def stream_reference(structure):
    """The key of the node whose gradient is the reference for every node up to it (the
    stem, the stream, the branches): the end of the residual stream, its last merge.  None
    in a plain chain (or without a structure): there, and for the nodes after the stream
    (a final norm, the head), the reference is the output node."""
    return structure.stream_end if structure is not None else None


def judge(records, structure, thresholds):
    """Fill ratios, steps and statuses of ``records`` (a list in execution order)."""
    ctx = Context(records, structure, thresholds)
    spine = ctx.spine
    end = ctx.by_name.get(stream_reference(structure))
    with_grad = [r for r in spine if r.grad_rms is not None]
    out_ref = with_grad[-1].grad_rms if with_grad else None
    body_ref = end.grad_rms if end is not None else out_ref
    wrefs = [r.weight_grad_rms for r in ctx.layers if r.weight_grad_rms is not None]
    wref = wrefs[-1] if wrefs else None
    first = next((r.act_rms for r in spine if r.act_rms is not None), None)
    body_end = end.index if end is not None else math.inf
    for r in records:
        in_body = r.index <= body_end
        r.grad_ratio = ratio(r.grad_rms, body_ref if in_body else out_ref)
        r.weight_grad_ratio = ratio(r.weight_grad_rms, wref)
        zero_out = r.weight_zero and r.output_zero  # a zero-initialised layer's 0, by design
        judged = r.kind != "attention" and not zero_out and not _zero_branch(r, ctx)
        if (in_body or end is None) and judged:
            r.act_ratio = ratio(r.act_rms, first)
    for prev, r in zip(spine, spine[1:]):
        r.grad_step = ratio(prev.grad_rms, r.grad_rms)
        r.act_step = ratio(r.act_rms, prev.act_rms)
    if structure is not None and any(r.grad_rms == 0 for r in records):
        below = structure.zero_below()
        for r in records:
            if r.grad_rms == 0:
                r.zero_below = below.get(r.name)
    for r in records:
        _status(r, ctx)
    return records


def _zero_branch(r, ctx):
    """Whether ``r`` lies in a residual branch whose output is exactly zero at init."""
    if ctx.structure is None or r.block is None or r.on_stream:
        return False
    block = next(b for b in ctx.structure.blocks if b.name == r.block)
    return ctx.structure.nodes[block.merge].head.branch_zero


def _status(r, ctx):
    t = ctx.thresholds
    if not (r.grad_finite and r.weight_grad_finite and r.act_finite):
        r.backward_status = r.forward_status = r.status = NONFINITE
        return
    if r.zero_below is not None:
        r.backward_status = ZERO_INIT
        r.note = (
            f"no gradient at step 0: the weights of {r.zero_below}, downstream, are exactly "
            "zero (a zero-initialised output); it receives gradient once they are not"
        )
    else:
        g = r.grad_ratio if r.grad_ratio is not None else r.weight_grad_ratio
        r.backward_status = t.classify(g)
    r.forward_status = t.classify(r.act_ratio) if r.act_ratio is not None else MISSING
    r.status = worst([r.backward_status, r.forward_status])
    if r.status == HEALTHY or r.status == MISSING:
        r.status = r.backward_status if r.backward_status != MISSING else r.forward_status


# ----------------------------------------------------------------------------------------
# Verdict rules


def _fmt(x, spec=".2g"):
    return "-" if x is None else format(x, spec)


def _names(records):
    return [r.name for r in records]


def nonfinite(ctx):
    """NaN/Inf: name the first node whose forward output (or gradient) is not finite."""
    bad = [r for r in ctx.records if r.status == NONFINITE]
    if not bad:
        return None
    fwd = [r for r in bad if not r.act_finite]
    first = fwd[0] if fwd else bad[-1]
    where = "forward output" if fwd else "gradient"
    return Finding(
        NONFINITE,
        "forward" if fwd else "backward",
        _names(bad),
        f"NaN/Inf first appears in the {where} of {first.name} "
        f"({'+'.join(x for x in (first.layer, first.activation) if x)}): an "
        "overflow or an invalid operation (log of 0, 0/0, sqrt of a negative) there",
        [
            "run the step under tg.autograd.detect_anomaly() to name the op",
            "lower the learning rate",
            "clip gradients with nn.utils.clip_grad_norm_",
        ],
    )


def stream_growth(ctx):
    """Residual stream: its std and its gradient across the blocks, against thresholds."""
    merges = [m for m in ctx.merges if m.act_rms is not None and m.grad_rms is not None]
    if len(merges) < 2:
        return None
    a, b = merges[0], merges[-1]
    n = len(merges) - 1
    fwd, bwd = ratio(b.act_std, a.act_std), ratio(a.grad_rms, b.grad_rms)
    status = worst([ctx.thresholds.classify(fwd), ctx.thresholds.classify(bwd)])
    if status not in (EXPLODING, VANISHING):
        return None
    word = "grows" if status == EXPLODING else "shrinks"
    branch = [r for r in ctx.records if r.block == a.block and not r.on_stream]
    last = branch[-1] if branch else None
    share = ""
    if last is not None and last.act_rms is not None:
        skip = math.sqrt(max(a.act_rms**2 - last.act_rms**2, 0.0))
        share = f"; the first branch outputs rms {_fmt(last.act_rms)} onto a stream of {_fmt(skip)}"
    return Finding(
        status,
        "forward" if ctx.thresholds.classify(fwd) == status else "backward",
        _names(merges),
        f"the residual stream {word} block by block (Var(x_l+1) = Var(x_l) + Var(branch_l)): "
        f"its std goes from {_fmt(a.act_std)} after {a.block} to {_fmt(b.act_std)} after "
        f"{b.block} (x{_fmt(fwd ** (1 / n) if fwd else None, '.3g')} per block), and "
        f"{_stream_gradient(merges, bwd)}{share}",
        RESIDUAL_REMEDIES if status == EXPLODING else [],
    )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _stream_gradient(merges, growth):
    """The backward half of the stream's cause: the gradient's growth per block from the
    last merge to the first, or, when both get exactly 0, that no gradient reaches the
    stream (and why, when the numbers say)."""
    first, last, blocks = merges[0], merges[-1], len(merges) - 1
    if growth is not None:
        return (
            f"the gradient on the stream grows toward the input by {_fmt(growth, '.2e')} "
            f"(x{_fmt(growth ** (1 / blocks) if growth else None, '.3g')} per block)"
        )
    zero = sum(m.grad_rms == 0 for m in merges)
    where = (
        f"from {last.block} back to {first.block}"
        if zero == len(merges)
        else f"at {zero} of its {len(merges)} merges, both ends included"
    )
    why = ""
    if last.act_std is not None and last.act_std**2 > _FLOAT32_MAX:
        why = (
            f" (its variance, {_fmt(last.act_std**2)}, is beyond float32's largest number, "
            f"{_fmt(_FLOAT32_MAX)}: whatever squares the stream after it overflows)"
        )
    return f"no gradient reaches the stream: it is exactly 0 {where}{why}"


def batchnorm_gradient(ctx):
    """A chain of BatchNorm layers: forward scale kept, gradient growing per layer."""
    if ctx.merges:
        return None
    norms = [r for r in ctx.spine if r.kind == "norm" and "BatchNorm" in r.layer]
    spine = [r for r in ctx.spine if r.grad_rms is not None]
    if len(norms) < 2 or len(spine) < 2:
        return None
    growth = ratio(spine[0].grad_rms, spine[-1].grad_rms)
    if ctx.thresholds.classify(growth) != EXPLODING:
        return None
    per = growth ** (1 / len(norms))
    acts = [r.act_std for r in norms if r.act_std is not None]
    return Finding(
        EXPLODING,
        "backward",
        _names([r for r in ctx.records if r.backward_status == EXPLODING]),
        f"BatchNorm in training mode amplifies the gradient at init: x{per:.3g} per "
        f"BatchNorm layer over {len(norms)} layers ({growth:.2e} in all), while it keeps "
        f"the forward scale (BatchNorm output std {min(acts):.2g}..{max(acts):.2g}); "
        "the per-batch normalization couples the samples, and the gradient's component "
        "along that coupling grows with depth (Yang et al. 2019, 'A mean field theory "
        "of batch normalization')",
        [
            "add residual connections around the layers (the stream carries the gradient "
            "past the BatchNorms)",
            "use fewer layers, or LayerNorm, which normalises each sample alone",
            "warm the learning rate up and clip gradients with nn.utils.clip_grad_norm_",
        ],
    )


def outlier_layer(ctx):
    """One weighted layer whose gain is far from its peers': name it, with its factors."""
    layers = [r for r in ctx.layers if r.gain is not None and r.gain > 0]
    shape = statistics.mode(r.layer for r in layers) if layers else None
    layers = [r for r in layers if r.layer == shape]  # peers: layers of the same shape
    if len(layers) < 3:
        return None
    med = statistics.median(r.gain for r in layers)
    odd = [r for r in layers if r.gain > OUTLIER * med or r.gain < med / OUTLIER]
    odd = [r for r in odd if not (r.saturated or 0) > SATURATED]  # saturated_units' case
    if not odd or len(odd) > len(layers) // 3:
        return None
    r = odd[0]
    status = EXPLODING if r.gain > med else VANISHING
    r.status = worst([r.status, status])
    return Finding(
        status,
        "backward",
        _names(odd),
        f"{r.name} ({r.layer}) has weights {r.gain / med:.3g}x its peers' (gain "
        f"sqrt(fan_in * Var[W]) = {r.gain:.3g} against a median of {med:.3g}): it "
        f"multiplies the activations by {_fmt(r.act_step, '.3g')} and the gradient by "
        f"{_fmt(_grad_across(ctx, r), '.3g')}",
        [f"re-initialise {r.name} like the other layers"],
    )


def _grad_across(ctx, r):
    """Gradient at ``r``'s input over the gradient at its output (its successor's step)."""
    spine = ctx.spine
    if r not in spine:
        return None
    i = spine.index(r)
    return ratio(spine[i - 1].grad_rms, r.grad_rms) if i > 0 else None


def dead_units(ctx):
    """Rectifier layers whose units output 0 for the whole batch."""
    dead = [r for r in ctx.records if r.dead is not None and r.dead > DEAD]
    if not dead:
        return None
    for r in dead:
        r.status = worst([r.status, VANISHING])
    r = dead[0]
    bias = ""
    mod = ctx.module(r.name)
    b = getattr(mod, "_parameters", {}).get("bias") if mod is not None else None
    if b is not None and b._array.size:
        bias = f" (its bias averages {float(b._array.mean()):.3g})"
    return Finding(
        VANISHING,
        "forward",
        _names(dead),
        f"dead units: {r.dead:.0%} of the {r.activation} units of {r.name} output 0 for "
        f"the whole batch{bias}, so no gradient passes them to the layers below",
        ["re-initialise that layer's bias at 0", "use LeakyReLU, or a smaller learning rate"],
    )


def saturated_units(ctx):
    """Sigmoid/Tanh layers with most outputs near an asymptote."""
    sat = [r for r in ctx.records if r.saturated is not None and r.saturated > SATURATED]
    if not sat:
        return None
    if len(sat) <= len([r for r in ctx.records if r.saturated is not None]) // 3:
        for r in sat:
            r.status = worst([r.status, VANISHING])
    r = max(sat, key=lambda r: r.saturated)
    peers = [x.weight_grad_norm for x in ctx.layers if x.weight_grad_norm and x not in sat]
    dw = ""
    if peers and r.weight_grad_norm is not None:
        dw = (
            f"; its weight gradient is {r.weight_grad_norm / statistics.median(peers):.2g}x "
            "the other layers' median"
        )
    return Finding(
        VANISHING,
        "backward",
        _names(sat),
        f"saturation: {r.saturated:.0%} of the {r.activation} outputs of {r.name} sit near "
        f"their asymptotes (pre-activation std {_fmt(r.preact_std)}), where the "
        f"derivative is almost 0{dw}"
        + (f"; {len(sat)} layers are saturated" if len(sat) > 1 else ""),
        [f"initialise with {recommended_init(r.activation.split('+')[0])}"],
    )


def attention_saturation(ctx):
    """Attention weights with near one-hot rows: logits not scaled by 1/sqrt(d)."""
    low = [r for r in ctx.records if r.entropy is not None and r.entropy < ENTROPY]
    if not low:
        return None
    for r in low:
        r.status = worst([r.status, VANISHING])
    r = low[0]
    return Finding(
        VANISHING,
        "forward",
        _names(low),
        f"saturated attention in {r.name}: the rows' mean entropy is {r.entropy:.0%} of the "
        f"maximum log({r.keys}) and the largest weight averages {r.max_weight:.2f} (near "
        f"one-hot), with logits of std {_fmt(r.logit_std, '.3g')} within a row; the "
        "softmax's gradient vanishes there, so the queries and keys barely learn",
        [
            "scale the logits by 1/sqrt(d_head) (F.scaled_dot_product_attention does)",
            "normalise queries and keys (QK-LayerNorm), or initialise W_q and W_k smaller",
        ],
    )


def chain_gradient(ctx):
    """A plain chain whose gradient vanishes or explodes: compare the weights' gain with
    what the activation needs."""
    if ctx.merges or any("BatchNorm" in r.layer for r in ctx.spine):
        return None
    statuses = {r.backward_status for r in ctx.records}
    status = next((s for s in (EXPLODING, VANISHING) if s in statuses), None)
    if status is None:
        return None
    act = _dominant_activation(ctx)
    spec = lookup(act) if act is not None else None
    name = spec.name if spec else "a linear layer"
    needed = spec.gain(act) if spec else 1.0
    gains = [r.gain for r in ctx.layers[:-1] if r.gain is not None] or [
        r.gain for r in ctx.layers if r.gain is not None
    ]
    gain = statistics.median(gains) if gains else None
    per = _per_layer(ctx)
    gain_text = (
        f"the weights carry gain sqrt(fan_in * Var[W]) = {gain:.2f}, {name} needs about "
        f"{needed:.2f}"
        if gain is not None
        else ""
    )
    names = _names([r for r in ctx.records if r.backward_status == status])
    advice = f"initialise with {recommended_init(spec)}"
    if status == EXPLODING:
        cause = (
            f"weights too large for {name}: {gain_text}, so each layer multiplies the "
            f"gradient by about {per:.3g}"
            if gain is not None and gain > needed * 1.1 and per
            else "the layers amplify the gradient on its way to the input"
            + (f" ({gain_text})" if gain_text else "")
        )
        return Finding(
            status,
            "backward",
            names,
            cause,
            [advice, "clip gradients with nn.utils.clip_grad_norm_", "lower the learning rate"],
        )
    if gain is not None and gain > needed * 1.1 and spec and spec.saturated is not None:
        sat = [r.saturated for r in ctx.records if r.saturated is not None]
        cause = (
            f"saturation: weights too large for {name} ({gain_text}), so pre-activations "
            f"are wide and {statistics.mean(sat) if sat else 0:.0%} of the units sit near "
            "their asymptotes, where the derivative is almost 0"
        )
    elif gain is not None and gain < needed / 1.1:
        cause = f"weights too small: {gain_text}, so each layer shrinks the gradient"
    else:
        cause = "the layers attenuate the gradient on its way to the input" + (
            f" ({gain_text})" if gain_text else ""
        )
    if per:
        cause += f" (x{per:.3g} per layer)"
    remedies = [advice]
    if spec is not None and spec.saturated is not None:
        remedies.append("or switch to ReLU with He init (no saturation)")
    return Finding(status, "backward", names, cause, remedies)


def chain_activations(ctx):
    """A plain chain whose activations vanish or explode with depth."""
    if ctx.merges:
        return None
    spine = [r for r in ctx.spine if r.act_ratio is not None]
    bad = [r for r in spine if r.forward_status in (EXPLODING, VANISHING)]
    if not bad:
        return None
    r = bad[-1]
    word = "explode" if r.forward_status == EXPLODING else "vanish"
    return Finding(
        r.forward_status,
        "forward",
        _names(bad),
        f"activations {word} with depth: their rms goes from {_fmt(spine[0].act_rms)} "
        f"after {spine[0].name} to {_fmt(r.act_rms)} after {r.name} (x{r.act_ratio:.2g})",
        [],
    )


def update_size(ctx):
    updates = [r.update_ratio for r in ctx.records if r.update_ratio is not None]
    if not updates:
        return None
    u = statistics.median(updates)
    if 1e-5 <= u <= 1e-2:
        return None
    big = u > 1e-2
    return Finding(
        HEALTHY,
        "backward",
        [],
        f"{'large' if big else 'tiny'} updates: the median update-to-weight ratio is "
        f"{u:.1e} (about 1e-3 is typical)",
        ["lower the learning rate" if big else "raise the learning rate"],
    )


def zero_init(ctx):
    """Nodes whose gradient is exactly 0 because the weights downstream are exactly 0 (the
    nodes named by ``zero_below``): by design, not vanishing; said with those weights' own
    gradient, which decides when the nodes before them start to learn."""
    zeros = [r for r in ctx.records if r.backward_status == ZERO_INIT]
    if not zeros:
        return None
    stops = sorted({r.zero_below for r in zeros}, key=lambda k: ctx.by_name[k].index)
    stops = [ctx.by_name[k] for k in stops]
    cause = (
        f"{_count(zeros, 'node')} get exactly zero gradient at step 0 "
        f"({', '.join(_short(zeros))}), by design and not from vanishing: the weights "
        f"downstream of them, in {', '.join(_short(stops))}, are exactly zero (a "
        "zero-initialised output, the Fixup/SkipInit/ReZero recipe) and pass no gradient back"
    )
    moving = [r for r in stops if r.weight_grad_norm]
    stuck = [r for r in stops if r.weight_grad_norm == 0]
    if moving:
        dw = sorted(r.weight_grad_norm for r in moving)
        span = _fmt(dw[0]) if len(dw) == 1 else f"{_fmt(dw[0])} to {_fmt(dw[-1])}"
        one = len(moving) == 1
        if len(moving) < len(stops):
            who = f"Of those, {', '.join(_short(moving))}"
        else:
            who = "That weight" if one else "Those weights"
        cause += (
            f". {who} {'gets a gradient itself' if one else 'get a gradient themselves'} "
            f"(|dW| {span}), so {'it is' if one else 'they are'} non-zero after the first "
            f"step, and the nodes before {'it' if one else 'them'} receive gradient from the "
            "second step on"
        )
    if stuck:
        cause += (
            f"; {', '.join(_short(stuck))} {'gets' if len(stuck) == 1 else 'get'} no "
            "gradient at step 0 either (more zero "
            "weights lie downstream of them), so the nodes before those wait a step more"
        )
    return Finding(ZERO_INIT, "backward", _names(zeros), cause, [])


def _count(records, noun):
    return f"{len(records)} {noun}" + ("" if len(records) == 1 else "s")


def _short(records, limit=4):
    names = [r.name for r in records]
    return names if len(names) <= limit else names[:2] + [f"... {len(names) - 2} more"]


def _dominant_activation(ctx):
    acts = [ctx.activation(r.name) for r in ctx.layers]
    acts = [a for a in acts if a is not None]
    if not acts:
        return None
    names = [type(a).__name__ for a in acts]
    best = max(set(names), key=names.count)
    return next(a for a in acts if type(a).__name__ == best)


def _per_layer(ctx):
    spine = [r for r in ctx.spine if r.grad_rms is not None]
    if len(spine) < 2:
        return None
    g = ratio(spine[0].grad_rms, spine[-1].grad_rms)
    return g ** (1 / (len(spine) - 1)) if g and math.isfinite(g) and g > 0 else None


# the order in which the verdict states causes: the most specific first
RULES = (
    nonfinite,
    stream_growth,
    batchnorm_gradient,
    outlier_layer,
    dead_units,
    attention_saturation,
    saturated_units,
    chain_gradient,
    chain_activations,
    zero_init,
    update_size,
)
