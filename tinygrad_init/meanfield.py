"""Mean-field theory of deep random networks (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz et al. 2017,
"Deep information propagation").

A fully connected network with weights ``W ~ N(0, sigma_w^2 / N)`` and biases
``b ~ N(0, sigma_b^2)`` maps the pre-activation variance ``q`` of one layer to the next by

    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2,       z ~ N(0, 1)

with a fixed point ``q*``.  At ``q*`` the squared norm of a back-propagated gradient is
multiplied per layer by

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]

(< 1: ordered, gradients vanish; > 1: chaotic, they explode; = 1: the edge of chaos),
and correlations between two inputs approach their fixed point over the depth scale
``xi_c = -1 / log(chi_c)``, ``chi_c`` the slope of the correlation map at ``c*`` (``c* =
1`` when ``chi_1 <= 1``, so ``chi_c = chi_1``).  Expectations are 200-point
Gauss-Hermite quadrature.  ``phi`` is tanh unless another pair (phi, phi') is given.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

__all__ = ["q_star", "chi_1", "depth_scale", "critical_sigma_w2", "phase_diagram"]

_NODES, _WEIGHTS = hermegauss(200)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)


def _tanh(x):
    return np.tanh(x)


def _tanh_prime(x):
    return 1.0 / np.cosh(x) ** 2


def _expect(fn):
    return float(np.sum(_WEIGHTS * fn(_NODES)))


def q_star(sigma_w2, sigma_b2, phi=_tanh, iterations=500, q0=1.0):
    """The fixed point of ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2`` (iterated)."""
    q = float(q0)
    for _ in range(iterations):
        root = math.sqrt(q)
        new = sigma_w2 * _expect(lambda z, r=root: phi(r * z) ** 2) + sigma_b2
        if abs(new - q) < 1e-13:
            return new
        q = new
    return q


def chi_1(sigma_w2, sigma_b2, phi=_tanh, phi_prime=_tanh_prime):
    """``sigma_w^2 E[phi'(sqrt(q*) z)^2]``: the per-layer factor of a gradient's squared norm."""
    q = q_star(sigma_w2, sigma_b2, phi)
    return sigma_w2 * _expect(lambda z: phi_prime(math.sqrt(q) * z) ** 2)


def depth_scale(sigma_w2, sigma_b2):
    """``xi = -1 / log(chi_1)``: the depth over which gradients change by a factor e (in
    squared norm) and, in the ordered phase, correlations converge; inf on the edge."""
    chi = chi_1(sigma_w2, sigma_b2)
    return math.inf if chi == 1.0 else -1.0 / math.log(chi)


def critical_sigma_w2(sigma_b2, lo=0.5, hi=6.0, tol=1e-10):
    """The ``sigma_w^2`` with ``chi_1 = 1`` at this ``sigma_b^2`` (bisection)."""
    if not chi_1(lo, sigma_b2) < 1.0 < chi_1(hi, sigma_b2):
        raise ValueError(f"critical_sigma_w2: no edge of chaos in [{lo}, {hi}] at {sigma_b2}")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if chi_1(mid, sigma_b2) < 1.0 else (lo, mid)
    return 0.5 * (lo + hi)


def phase_diagram(sigma_w2_values, sigma_b2_values):
    """``chi_1`` on a grid: an array of shape (len(sigma_b2_values), len(sigma_w2_values))."""
    return np.array([[chi_1(w, b) for w in sigma_w2_values] for b in sigma_b2_values])
