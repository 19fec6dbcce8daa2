"""The verdict: what is wrong with the signal flow, where, by how much, why, what to do.

:meth:`Verdict.from_records` runs every rule of :data:`~.rules.RULES` on the records and
keeps what they find; ``status`` is the worse of the forward part (activation scale with
depth) and the backward part (gradients).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from .rules import RULES, Context
from .status import EXPLODING, HEALTHY, NONFINITE, VANISHING, ZERO_INIT, as_thresholds, worst

__all__ = ["Verdict"]


@dataclass
class Verdict:
    """``status``: ``'nan'`` > ``'exploding'`` > ``'vanishing'`` > ``'healthy'``, the worse of
    ``forward_status`` and ``backward_status``; ``vanishing`` / ``exploding`` /
    ``nonfinite`` / ``zero_init``: node names in each class; ``ratio``: the gradient at the
    start of the spine over its end (the stream's end in a residual network);
    ``per_layer``: its geometric mean per spine node; ``causes`` and ``remedies``: text,
    each cause stated with its measured numbers.  ``str(verdict)`` is a paragraph."""

    status: str
    vanishing: list
    exploding: list
    nonfinite: list
    ratio: float | None
    per_layer: float | None
    causes: list
    remedies: list
    headline: str = ""
    forward_status: str = HEALTHY
    backward_status: str = HEALTHY
    zero_init: list = field(default_factory=list)

    @classmethod
    def from_records(cls, records, thresholds=None, structure=None):
        ctx = Context(list(records), structure, as_thresholds(thresholds))
        findings = [f for f in (rule(ctx) for rule in RULES) if f is not None]
        recs = ctx.records
        by = {s: [r.name for r in recs if r.status == s] for s in (VANISHING, EXPLODING, NONFINITE)}
        fwd = worst(
            [r.forward_status for r in recs] + [f.status for f in findings if f.part == "forward"]
        )
        bwd = worst(
            [r.backward_status for r in recs] + [f.status for f in findings if f.part == "backward"]
        )
        status = worst([fwd, bwd])
        spine = [r for r in (ctx.merges or ctx.spine) if r.grad_rms is not None]
        ratio = per = None
        if len(spine) >= 2 and spine[-1].grad_rms:
            ratio = spine[0].grad_rms / spine[-1].grad_rms
            if math.isfinite(ratio) and ratio > 0:
                per = ratio ** (1.0 / (len(spine) - 1))
        causes = [f.cause for f in findings if f.status != HEALTHY or f.part == "backward"]
        remedies = list(dict.fromkeys(r for f in findings for r in f.remedies))
        headline = _headline(status, fwd, bwd, by, len(recs), ratio, ctx)
        return cls(
            status,
            by[VANISHING],
            by[EXPLODING],
            by[NONFINITE],
            ratio,
            per,
            causes,
            remedies,
            headline,
            fwd,
            bwd,
            [r.name for r in recs if r.backward_status == ZERO_INIT],
        )

    def __str__(self):
        lines = [self.headline[:1].upper() + self.headline[1:] + "."]
        if self.per_layer is not None and self.status != HEALTHY:
            lines.append(
                f"Each node of the path scales the gradient by about {self.per_layer:.3g} "
                "on its way back."
            )
        if self.vanishing:
            lines.append(f"Vanishing: {_names(self.vanishing)}.")
        if self.exploding:
            lines.append(f"Exploding: {_names(self.exploding)}.")
        lines += [f"Cause: {c}." for c in self.causes]
        lines += [f"Remedy: {r}." for r in self.remedies]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self):
        colour = {VANISHING: "#08519c", EXPLODING: "#a50f15", NONFINITE: "#ff00ff"}.get(
            self.status, "#238b45"
        )
        first, *rest = str(self).split("\n")
        items = "".join(f"<li>{html.escape(x)}</li>" for x in rest)
        status = html.escape(self.status)
        return (
            f'<div data-status="{status}"><p style="color:{colour}"><b>{status.upper()}: '
            f"{html.escape(first)}</b></p><ul>{items}</ul></div>"
        )


def _headline(status, fwd, bwd, by, n, ratio, ctx):
    merges = ctx.merges
    if status == NONFINITE:
        return f"NaN/Inf in {_names(by[NONFINITE])}"
    if status == HEALTHY:
        zeros = sum(r.backward_status == ZERO_INIT for r in ctx.records)
        if zeros:
            return (
                f"gradients and activations are healthy; {zeros} node"
                f"{'s get' if zeros > 1 else ' gets'} no gradient at step 0, by design "
                "(zero-init)"
            )
        return "gradients and activations are healthy in every layer"
    parts = []
    if merges and status in (EXPLODING, VANISHING):
        word = "explodes" if status == EXPLODING else "vanishes"
        parts.append(f"the residual stream {word} over {len(merges)} blocks")
    if bwd in (EXPLODING, VANISHING):
        word = "explode" if bwd == EXPLODING else "vanish"
        k = len([r for r in ctx.records if bwd in (r.backward_status, r.status)])
        parts.append(f"gradients {word} toward the input ({k} of {n} layers)")
    if fwd in (EXPLODING, VANISHING):
        word = "explode" if fwd == EXPLODING else "vanish"
        parts.append(f"activations {word} with depth")
    text = "; ".join(parts) or f"{status} layers: {_names(by.get(status, []))}"
    if ratio is not None and math.isfinite(ratio):
        text += f": first/last gradient = {ratio:.1e}"
    return text


def _names(names, limit=8):
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    half = limit // 2
    return (
        ", ".join(names[:half])
        + f", ... ({len(names) - 2 * half} more) ..., "
        + ", ".join(names[-half:])
    )
