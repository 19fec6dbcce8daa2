"""Shared hypothesis strategies for the op tests: shapes, broadcasting pairs, and float64
arrays drawn from per-op input ranges that stay away from kinks and undefined points.

Ranges (``DOMAINS``) are chosen so that central differences with eps=1e-6 are accurate:
log/sqrt/pow bases positive and away from 0, divisors away from 0, relu/abs inputs at
least 0.1 from 0, clamp inputs away from the bounds, values for max/min reductions
distinct (no ties), operands of maximum/minimum apart (no ties).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_init as tg

MAX_SIDE = 3
MAX_DIMS = 3

# (low, high, minimum distance from 0)
DOMAINS = {
    "any": (-2.0, 2.0, 0.0),
    "exp": (-2.0, 2.0, 0.0),
    "positive": (0.2, 3.0, 0.0),  # log, sqrt, pow base
    "nonzero": (-3.0, 3.0, 0.3),  # divisors
    "away_from_zero": (-2.0, 2.0, 0.1),  # relu, abs
}


def shapes(min_dims=0, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE):
    """Array shapes, size-1 dims included."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcast_pairs(max_dims=MAX_DIMS):
    """Two shapes that broadcast against each other (different ranks, size-1 dims)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, max_side=MAX_SIDE
    ).map(lambda r: r.input_shapes)


def values(domain="any"):
    """Floats from a named domain, away from 0 by its margin."""
    lo, hi, margin = DOMAINS[domain]
    if margin == 0:
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    top = max(abs(lo), abs(hi))
    magnitude = st.floats(margin, top, allow_nan=False, allow_infinity=False)
    if lo >= 0:
        return magnitude
    return st.tuples(magnitude, st.booleans()).map(lambda p: p[0] if p[1] else -p[0])


def arrays(shape, domain="any"):
    """float64 arrays of ``shape`` drawn from ``domain``."""
    return hnp.arrays(np.float64, shape, elements=values(domain))


@st.composite
def distinct_arrays(draw, shape):
    """float64 arrays whose values are pairwise at least 0.2 apart (no ties in max/min)."""
    n = int(np.prod(shape, dtype=int))
    order = draw(st.permutations(range(n)))
    jitter = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 0.05)))
    offset = draw(st.floats(-1.0, 1.0))
    return (np.asarray(order, dtype=np.float64) * 0.25 + jitter + offset).reshape(shape)


def grid_arrays(shape, odd):
    """Values 0.5 k + jitter (odd=False) or 0.5 k + 0.25 + jitter (odd=True), jitter < 0.05.

    An even and an odd array are never closer than 0.2 anywhere, whatever the
    broadcasting: maximum/minimum of the two have no ties.
    """
    element = st.builds(
        lambda k, j: 0.5 * k + 0.25 * odd + j, st.integers(-4, 4), st.floats(0.0, 0.05)
    )
    return hnp.arrays(np.float64, shape, elements=element)


def dims(ndim):
    """A valid dim index for a tensor of ``ndim`` dims, negative ones included."""
    n = max(ndim, 1)
    return st.integers(-n, n - 1)


def leaf(array):
    """A float64 leaf tensor that requires grad."""
    return tg.tensor(np.array(array, dtype=np.float64), requires_grad=True)
