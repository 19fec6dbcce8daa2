"""Statuses, thresholds, ratios and number formatting: the vocabulary every verdict uses.

A gradient (or activation) is judged by a **ratio** to a reference along the path that
carries the signal (see :mod:`tinygrad_init.diagnostics.structure`):
``ratio < thresholds.vanishing`` (default 1e-2) is *vanishing*, ``ratio >
thresholds.exploding`` (default 1e2) is *exploding*, in between *healthy*; NaN or Inf is
its own class, and a gradient that is exactly zero because a weight downstream is exactly
zero (a zero-initialised output) is *zero-init*, not vanishing.  Every statistic
is computed in float64, so a float32 gradient of 1e-30 is 1e-30, not 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "VANISHING",
    "HEALTHY",
    "EXPLODING",
    "NONFINITE",
    "MISSING",
    "ZERO_INIT",
    "SEVERITY",
    "Thresholds",
    "classify",
    "as_thresholds",
    "worst",
    "ratio",
    "rms",
    "norm",
    "format_number",
]

VANISHING, HEALTHY, EXPLODING, NONFINITE, MISSING = (
    "vanishing",
    "healthy",
    "exploding",
    "nan",
    "none",
)
ZERO_INIT = "zero-init"
# worse first: the status of a set of records is the most severe one among them
SEVERITY = (NONFINITE, EXPLODING, VANISHING, HEALTHY, ZERO_INIT, MISSING)


@dataclass(frozen=True)
class Thresholds:
    """Where vanishing and exploding start, as ratios to the reference.

    ``vanishing=1e-2`` and ``exploding=1e2`` are the defaults: a layer whose gradient is
    100 times smaller (larger) than the reference's is vanishing (exploding).
    """

    vanishing: float = 1e-2
    exploding: float = 1e2

    def __post_init__(self):
        v, e = self.vanishing, self.exploding
        for name, value in (("vanishing", v), ("exploding", e)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"Thresholds: {name} must be a positive finite number, got {value!r}"
                )
        if not v < 1.0 < e:
            raise ValueError(
                f"Thresholds: need vanishing < 1 < exploding, got vanishing={v!r}, exploding={e!r}"
            )

    def classify(self, ratio):
        """``'vanishing'``, ``'healthy'``, ``'exploding'``, ``'nan'`` or ``'none'`` (no ratio)."""
        if ratio is None:
            return MISSING
        if not math.isfinite(ratio):
            return NONFINITE
        if ratio < self.vanishing:
            return VANISHING
        if ratio > self.exploding:
            return EXPLODING
        return HEALTHY


def classify(ratio, thresholds=None):
    """Classify a magnitude ratio (see :class:`Thresholds`)."""
    return (thresholds or Thresholds()).classify(ratio)


def as_thresholds(thresholds):
    """A :class:`Thresholds` from None, a Thresholds or a ``(vanishing, exploding)`` pair."""
    if thresholds is None:
        return Thresholds()
    if isinstance(thresholds, Thresholds):
        return thresholds
    if isinstance(thresholds, (tuple, list)) and len(thresholds) == 2:
        return Thresholds(*thresholds)
    raise TypeError(
        f"thresholds must be a Thresholds or a (vanishing, exploding) pair, got "
        f"{type(thresholds).__name__}"
    )


def worst(statuses):
    """The most severe of ``statuses`` (``'healthy'`` for none)."""
    found = set(statuses)
    return next((s for s in SEVERITY[:3] if s in found), HEALTHY)


def ratio(value, reference):
    """``value / reference``; None when either is missing or both are 0, NaN if not finite."""
    if value is None or reference is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference)):
        return math.nan
    if reference == 0:
        return None if value == 0 else math.inf
    return value / reference


def rms(a):
    """Root mean square in float64 (0 for an empty array)."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def norm(a):
    """L2 norm of all entries, in float64."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def format_number(x, spec=".2e"):
    """``format(x, spec)``; '-' for a missing value, 'nan' / 'inf' for a non-finite one."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)
