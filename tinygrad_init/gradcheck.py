"""Finite-difference gradient checking: gradcheck, gradgradcheck and gradcheck_graph.

``gradcheck`` compares the analytic Jacobian that backward computes with central finite
differences (``torch.autograd.gradcheck``):

    J_numerical[:, k] = (f(x + eps * e_k) - f(x - eps * e_k)) / (2 * eps)

and accepts an entry when ``|analytic - numerical| <= atol + rtol * |numerical|``.
``fast_mode=True`` checks random directional derivatives instead (``u^T J v`` with random
unit vectors ``u`` in output space and ``v`` in input space), so its cost is a few forward
and backward passes whatever the number of parameters.  ``gradgradcheck`` gradchecks the
first derivatives built with ``create_graph=True``.

``gradcheck_graph`` (no PyTorch counterpart) walks the graph already recorded for an output
and checks every node's gradient rule on that node's own saved inputs, so that the one
wrong rule inside a large model can be named, with the file:line that created it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import ops
from .autograd import FunctionCtx, _FunctionOp, enable_grad
from .autograd import grad as _grad
from .graphwalk import walk
from .tensor import Tensor

__all__ = [
    "gradcheck",
    "gradgradcheck",
    "gradcheck_graph",
    "GradcheckError",
    "Mismatch",
    "NodeCheck",
    "GraphCheckReport",
]

_SEED = 0  # random probes are reproducible: the same call gives the same verdict
_PROBES = 2  # independent directional probes in fast mode
_WORST = 8  # entries listed in a report
_SHOW_FULL = 64  # Jacobians with at most this many entries are printed whole
_NODE_FULL_OUT = 32  # gradcheck_graph checks a node's full Jacobian up to this many outputs
_NODE_FULL_IN = 64  # ... and this many input elements; larger nodes get directional probes
_NO_SITE = (
    "creation site not recorded; run under tg.autograd.detect_anomaly() to record creation sites"
)


class GradcheckError(RuntimeError):
    """A gradient that disagrees with finite differences (or cannot be checked).

    Attributes (None where they do not apply): ``output_index`` and ``input_index`` of the
    first failing pair; ``mismatches``, the worst entries (a list of ``Mismatch``);
    ``analytic`` and ``numerical``, the two Jacobians (full mode) or directional derivatives
    (fast mode) of that pair; ``node`` (a ``NodeCheck``) and ``report`` for gradcheck_graph.
    """

    def __init__(
        self,
        message,
        *,
        output_index=None,
        input_index=None,
        mismatches=(),
        analytic=None,
        numerical=None,
        node=None,
        report=None,
    ):
        super().__init__(message)
        self.output_index = output_index
        self.input_index = input_index
        self.mismatches = list(mismatches)
        self.analytic = analytic
        self.numerical = numerical
        self.node = node
        self.report = report


@dataclass
class Mismatch:
    """One disagreeing Jacobian entry: d output[output_position] / d input[input_position]."""

    output_index: int
    input_index: int
    output_position: tuple
    input_position: tuple
    analytic: float
    numerical: float
    abs_error: float
    rel_error: float
    tolerance: float
    kink: bool = False  # one-sided differences disagree: not differentiable there

    def row(self):
        where = f"out{_pos(self.output_position)} / in{_pos(self.input_position)}"
        flag = "  <- not differentiable here" if self.kink else ""
        return (
            f"    {where:<24} {self.analytic:>13.6g} {self.numerical:>13.6g} "
            f"{self.abs_error:>11.3g} {self.rel_error:>11.3g} {self.tolerance:>11.3g}{flag}"
        )


_TABLE_HEADER = (
    f"    {'entry':<24} {'analytic':>13} {'numerical':>13} {'abs err':>11} "
    f"{'rel err':>11} {'tolerance':>11}"
)


def _pos(position):
    return "[" + ", ".join(str(int(p)) for p in position) + "]"


# ----------------------------------------------------------------------------------------
# Inputs, outputs and evaluation


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _differentiable_inputs(inputs, warn=True):
    """Positions of the inputs that require grad (warning about single precision)."""
    positions = []
    for i, a in enumerate(inputs):
        if not (isinstance(a, Tensor) and a.requires_grad):
            continue
        if warn and a.dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {i} requires grad but is {a.dtype}, not float64; finite "
                f"differences in single precision are unreliable and this check will likely "
                f"fail. Convert the inputs with .double().",
                stacklevel=3,
            )
        positions.append(i)
    if not positions:
        raise ValueError(
            "gradcheck expects at least one input tensor to require gradient, "
            "but none of them has requires_grad=True"
        )
    return positions


def _output_positions(outputs):
    """Positions of the floating-point Tensor outputs (integer and non-Tensor are skipped)."""
    positions = [
        o
        for o, y in enumerate(outputs)
        if isinstance(y, Tensor) and np.issubdtype(y.dtype, np.floating)
    ]
    if not positions:
        raise TypeError(
            "gradcheck: fn must return a floating-point Tensor or a tuple "
            "containing at least one; got " + ", ".join(type(y).__name__ for y in outputs)
        )
    return positions


def _evaluate(fn, inputs, out_pos):
    """Run ``fn`` and return its checked outputs as float64 arrays."""
    outputs = _as_tuple(fn(*inputs))
    return [np.array(outputs[o]._array, dtype=np.float64) for o in out_pos]


@contextlib.contextmanager
def _writable(t):
    """Let the data of ``t`` be perturbed in place; the original array is restored after."""
    original = t._array
    if not original.flags.writeable:
        t._array = original.copy()
    try:
        yield t._array
    finally:
        t._array = original


def _tolerance(numerical, atol, rtol):
    return atol + rtol * np.abs(numerical)


def _bad(analytic, numerical, atol, rtol):
    """Entries outside tolerance (NaN anywhere counts as bad)."""
    return ~(np.abs(analytic - numerical) <= _tolerance(numerical, atol, rtol))


# ----------------------------------------------------------------------------------------
# Full Jacobians


def _analytic_jacobians(outputs, out_pos, inputs, in_pos, tick=None):
    """{(o, i): J} with J[j, k] = d outputs[o].flat[j] / d inputs[i].flat[k], one VJP a row."""
    xs = [inputs[i] for i in in_pos]
    jac = {
        (o, i): np.zeros((outputs[o]._array.size, inputs[i]._array.size))
        for o in out_pos
        for i in in_pos
    }
    for o in out_pos:
        y = outputs[o]
        if not y.requires_grad:
            continue  # independent of every input: a zero Jacobian
        for j in range(y._array.size):
            if tick is not None:
                tick("backward passes")
            seed = np.zeros(y.shape, dtype=y.dtype)
            seed.reshape(-1)[j] = 1
            grads = _grad([y], xs, [seed], retain_graph=True, allow_unused=True)
            for i, g in zip(in_pos, grads):
                if g is not None:
                    jac[(o, i)][j] = np.ravel(g._array)
    return jac


def _numerical_jacobians(fn, inputs, in_pos, out_pos, base, eps, tick=None):
    """Central differences, plus the one-sided ones used to recognise kinks.

    Returns {(o, i): (central, left, right)}, each of shape (output size, input size).
    """
    result = {}
    for i in in_pos:
        t = inputs[i]
        n = t._array.size
        cols = {o: [np.empty((base[k].size, n)) for _ in range(3)] for k, o in enumerate(out_pos)}
        with _writable(t) as data:
            for flat in range(n):
                if tick is not None:
                    tick(f"perturbing input {i}")
                pos = np.unravel_index(flat, data.shape)
                orig = data[pos].copy()
                try:
                    data[pos] = orig + eps
                    h_plus = float(data[pos]) - float(orig)
                    plus = _evaluate(fn, inputs, out_pos)
                    data[pos] = orig - eps
                    h_minus = float(orig) - float(data[pos])
                    minus = _evaluate(fn, inputs, out_pos)
                finally:
                    data[pos] = orig
                if h_plus <= 0 or h_minus <= 0:
                    raise GradcheckError(
                        f"gradcheck: eps={eps:g} is below the resolution of input {i} "
                        f"({data.dtype}) at index {_pos(pos)} (value {float(orig):g}), so "
                        f"x + eps == x; use float64 inputs or a larger eps",
                        input_index=i,
                    )
                for k, o in enumerate(out_pos):
                    c, left, right = cols[o]
                    f0 = base[k].ravel()
                    with np.errstate(all="ignore"):
                        c[:, flat] = (plus[k].ravel() - minus[k].ravel()) / (h_plus + h_minus)
                        left[:, flat] = (f0 - minus[k].ravel()) / h_minus
                        right[:, flat] = (plus[k].ravel() - f0) / h_plus
        for o in out_pos:
            result[(o, i)] = tuple(cols[o])
    return result


def _kinks(numerical, left, right, atol, rtol):
    """Entries where the one-sided differences disagree beyond tolerance."""
    with np.errstate(all="ignore"):
        return np.abs(left - right) > 2 * _tolerance(numerical, atol, rtol)


def _mismatches(o, i, a, n, kink, out_shape, in_shape, atol, rtol):
    """The disagreeing entries of one Jacobian pair, worst first."""
    with np.errstate(all="ignore"):
        tol = _tolerance(n, atol, rtol)
        err = np.abs(a - n)
        bad = ~(err <= tol)
        ratio = np.where(np.isnan(err), np.inf, err / tol)
    rows, cols = np.nonzero(bad)
    order = np.argsort(-ratio[rows, cols], kind="stable")
    found = []
    for r, c in zip(rows[order], cols[order]):
        found.append(
            Mismatch(
                o,
                i,
                np.unravel_index(r, out_shape),
                np.unravel_index(c, in_shape),
                float(a[r, c]),
                float(n[r, c]),
                float(err[r, c]),
                float(err[r, c] / abs(n[r, c])) if n[r, c] != 0 else float("inf"),
                float(tol[r, c]),
                bool(kink[r, c]),
            )
        )
    return found


def _describe_pair(o, i, a, n, found, out_shape, in_shape, atol, rtol, nonfinite):
    """Report for one failing (output, input) pair."""
    lines = [
        f"Jacobian mismatch for output {o} with respect to input {i} "
        f"(output shape {tuple(out_shape)}, input shape {tuple(in_shape)})",
        f"  criterion: |analytic - numerical| <= atol + rtol * |numerical| "
        f"(atol={atol:g}, rtol={rtol:g}); {len(found)} of {a.size} entries fail",
    ]
    if nonfinite:
        lines.append(
            "  the numerical derivative is not finite at some entries: f(x +/- eps) gave "
            "nan or inf, so the function is undefined or not differentiable there; move the "
            "input away from that point"
        )
    kinks = [m for m in found if m.kink]
    if kinks:
        m = kinks[0]
        lines.append(
            f"  {len(kinks)} failing entr{'y lies' if len(kinks) == 1 else 'ies lie'} where "
            f"the function is not differentiable (the one-sided differences disagree, e.g. "
            f"at input {i}{_pos(m.input_position)}): finite differences cannot judge the "
            f"gradient at a kink; move the input away from it"
        )
    lines.append(
        f"  worst entries (of {len(found)}):" if len(found) > _WORST else "  failing entries:"
    )
    lines.append(_TABLE_HEADER)
    lines.extend(m.row() for m in found[:_WORST])
    if a.size <= _SHOW_FULL:
        opts = dict(precision=6, suppress_small=True, max_line_width=100)
        lines.append("  analytic Jacobian (rows: output elements, columns: input elements):")
        lines.append(_indent(np.array2string(a, **opts), 4))
        lines.append("  numerical Jacobian:")
        lines.append(_indent(np.array2string(n, **opts), 4))
    return "\n".join(lines)


def _indent(text, n):
    return "\n".join(" " * n + line for line in text.splitlines())


# Full checks perturbing more elements than this show progress on a terminal by default.
PROGRESS_ELEMENTS = 2000


def _ticker(progress, outputs, out_pos, inputs, in_pos):
    """A ``tick(label)`` counting the backward passes and perturbed elements, or None."""
    perturbed = sum(inputs[i]._array.size for i in in_pos)
    if progress is None:
        progress = perturbed > PROGRESS_ELEMENTS
    if progress is False:
        return None, None
    if progress is True:
        from ._progress import terminal_progress

        progress = terminal_progress()
    rows = sum(outputs[o]._array.size for o in out_pos if outputs[o].requires_grad)
    total = 2 * rows + perturbed
    done = 0

    def tick(label):
        nonlocal done
        progress(done, total, f"gradcheck: {label}")
        done += 1

    def finish():
        progress(total, total, "gradcheck: done")

    return tick, finish


def _full_check(fn, inputs, in_pos, eps, atol, rtol, nondet_tol, progress=None):
    outputs = _as_tuple(fn(*inputs))
    out_pos = _output_positions(outputs)
    base = [np.array(outputs[o]._array, dtype=np.float64) for o in out_pos]
    tick, finish = _ticker(progress, outputs, out_pos, inputs, in_pos)
    analytic = _analytic_jacobians(outputs, out_pos, inputs, in_pos, tick)
    numerical = _numerical_jacobians(fn, inputs, in_pos, out_pos, base, eps, tick)
    failures = []
    for o in out_pos:
        for i in in_pos:
            a = analytic[(o, i)]
            n, left, right = numerical[(o, i)]
            kink = _kinks(n, left, right, atol, rtol)
            found = _mismatches(o, i, a, n, kink, outputs[o].shape, inputs[i].shape, atol, rtol)
            if found:
                failures.append((o, i, a, n, found, not np.isfinite(n).all()))
    if not failures:
        again = _analytic_jacobians(outputs, out_pos, inputs, in_pos, tick)
        if finish is not None:
            finish()
        _check_reentrant(analytic, again, nondet_tol)
        return
    if finish is not None:
        finish()
    o, i, a, n, found, nonfinite = failures[0]
    text = "gradcheck failed: " + _describe_pair(
        o, i, a, n, found, outputs[o].shape, inputs[i].shape, atol, rtol, nonfinite
    )
    if len(failures) > 1:
        others = ", ".join(f"(output {fo}, input {fi})" for fo, fi, *_ in failures[1:])
        text += f"\n  other failing pairs: {others}"
    raise GradcheckError(
        text, output_index=o, input_index=i, mismatches=found[:_WORST], analytic=a, numerical=n
    )


def _check_reentrant(first, second, nondet_tol):
    for key, a in first.items():
        b = second[key]
        with np.errstate(all="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            diff = np.where(same, 0.0, np.abs(a - b))
        if not (diff <= nondet_tol).all():
            o, i = key if isinstance(key, tuple) else (None, None)
            raise GradcheckError(
                f"gradcheck failed: backward is not reentrant: running backward twice with "
                f"the same inputs and grad_outputs gave values differing by "
                f"{np.nanmax(diff):.3g} (output {o}, input {i}), more than "
                f"nondet_tol={nondet_tol:g}",
                output_index=o,
                input_index=i,
            )


# ----------------------------------------------------------------------------------------
# Fast mode: random directional derivatives u^T J v


def _unit_vectors(rng, shapes):
    """Gaussian vectors of the given shapes, jointly normalised to unit length."""
    parts = [rng.standard_normal(s) for s in shapes]
    norm = np.sqrt(sum(float(np.sum(p * p)) for p in parts)) or 1.0
    return [p / norm for p in parts]


def _vjp_dots(outputs, out_pos, inputs, in_pos, u, only=None):
    """{i: v-independent gradient J_i^T u} via one backward (``only``: one output)."""
    pairs = [
        (outputs[o], u[k])
        for k, o in enumerate(out_pos)
        if outputs[o].requires_grad and (only is None or o == only)
    ]
    if not pairs:
        return {i: np.zeros(inputs[i].shape) for i in in_pos}
    ys = [y for y, _ in pairs]
    seeds = [g.astype(y.dtype) for y, g in pairs]
    grads = _grad(ys, [inputs[i] for i in in_pos], seeds, retain_graph=True, allow_unused=True)
    return {
        i: (np.zeros(inputs[i].shape) if g is None else np.array(g._array, np.float64))
        for i, g in zip(in_pos, grads)
    }


def _directional(fn, inputs, move, out_pos, v, eps):
    """f(x + eps v) and f(x - eps v), moving the inputs at positions ``move``."""
    results = []
    with contextlib.ExitStack() as stack:
        datas = {i: stack.enter_context(_writable(inputs[i])) for i in move}
        saved = {i: datas[i].copy() for i in move}
        try:
            for sign in (1.0, -1.0):
                for i in move:
                    datas[i][...] = saved[i] + sign * eps * v[i]
                results.append(_evaluate(fn, inputs, out_pos))
        finally:
            for i in move:
                datas[i][...] = saved[i]
    return results


def _fast_check(fn, inputs, in_pos, eps, atol, rtol, nondet_tol):
    outputs = _as_tuple(fn(*inputs))
    out_pos = _output_positions(outputs)
    base = [np.array(outputs[o]._array, dtype=np.float64) for o in out_pos]
    rng = np.random.default_rng(_SEED)
    for probe in range(_PROBES):
        u = _unit_vectors(rng, [b.shape for b in base])
        v = dict(zip(in_pos, _unit_vectors(rng, [inputs[i].shape for i in in_pos])))
        g = _vjp_dots(outputs, out_pos, inputs, in_pos, u)
        analytic = sum(float(np.sum(g[i] * v[i])) for i in in_pos)
        plus, minus = _directional(fn, inputs, in_pos, out_pos, v, eps)
        numerical = _dot(u, plus, minus, base, eps)
        c, left, right = numerical
        if np.isfinite(c) and not _bad(np.float64(analytic), np.float64(c), atol, rtol):
            _check_reentrant(g, _vjp_dots(outputs, out_pos, inputs, in_pos, u), nondet_tol)
            continue
        _fast_failure(
            fn,
            inputs,
            in_pos,
            outputs,
            out_pos,
            base,
            u,
            v,
            eps,
            atol,
            rtol,
            probe,
            analytic,
            numerical,
        )


def _dot(u, plus, minus, base, eps):
    """u . (central, left, right) directional differences."""
    with np.errstate(all="ignore"):
        c = sum(float(np.sum(uk * (p - m))) for uk, p, m in zip(u, plus, minus)) / (2 * eps)
        left = sum(float(np.sum(uk * (b - m))) for uk, b, m in zip(u, base, minus)) / eps
        right = sum(float(np.sum(uk * (p - b))) for uk, b, p in zip(u, base, plus)) / eps
    return c, left, right


def _fast_failure(
    fn, inputs, in_pos, outputs, out_pos, base, u, v, eps, atol, rtol, probe, analytic, numerical
):
    """Locate the failing (output, input) pair of a failed probe, then raise."""
    c, left, right = numerical
    rows = []
    for k, o in enumerate(out_pos):
        g = _vjp_dots(outputs, out_pos, inputs, in_pos, u, only=o)
        for i in in_pos:
            plus, minus = _directional(fn, inputs, [i], out_pos, v, eps)
            a_oi = float(np.sum(g[i] * v[i]))
            with np.errstate(all="ignore"):
                n_oi = float(np.sum(u[k] * (plus[k] - minus[k]))) / (2 * eps)
            rows.append((o, i, a_oi, n_oi))

    def badness(row):
        a, n = row[2], row[3]
        tol = atol + rtol * abs(n)
        return np.inf if not np.isfinite(a - n) else abs(a - n) / tol

    o, i, a_oi, n_oi = max(rows, key=badness)
    err = abs(a_oi - n_oi)
    tol = atol + rtol * abs(n_oi)
    lines = [
        f"gradcheck failed (fast mode): directional derivative mismatch for output {o} "
        f"with respect to input {i} (output shape {tuple(outputs[o].shape)}, input shape "
        f"{tuple(inputs[i].shape)})",
        f"  probe {probe + 1} of {_PROBES}: random unit vectors u (outputs) and v (inputs); "
        f"compared u^T J v from backward with u . (f(x + eps v) - f(x - eps v)) / (2 eps)",
        f"  this pair: analytic {a_oi:.6g}, numerical {n_oi:.6g}, abs err {err:.3g}, "
        f"rel err {err / abs(n_oi) if n_oi else float('inf'):.3g}, tolerance {tol:.3g}",
        f"  all outputs and inputs together: analytic {analytic:.6g}, numerical {c:.6g}",
    ]
    if not np.isfinite(c):
        lines.append(
            "  the numerical derivative is not finite: f(x +/- eps v) gave nan or "
            "inf, so the function is undefined or not differentiable there"
        )
    elif abs(left - right) > 2 * (atol + rtol * abs(c)):
        lines.append(
            f"  the function is not differentiable at this point along v (one-sided "
            f"differences {left:.6g} and {right:.6g} disagree): move the input away "
            f"from the kink"
        )
    if len(rows) > 1:
        lines.append("  per pair (output, input): analytic / numerical")
        for ro, ri, ra, rn in rows[:_WORST]:
            lines.append(f"    ({ro}, {ri}): {ra:.6g} / {rn:.6g}")
    lines.append("  run with fast_mode=False to see the individual Jacobian entries")
    mismatch = Mismatch(
        o, i, (), (), a_oi, n_oi, err, err / abs(n_oi) if n_oi else float("inf"), tol
    )
    raise GradcheckError(
        "\n".join(lines),
        output_index=o,
        input_index=i,
        mismatches=[mismatch],
        analytic=a_oi,
        numerical=n_oi,
    )


# ----------------------------------------------------------------------------------------
# Public checks


def gradcheck(
    fn,
    inputs,
    *,
    eps=1e-6,
    atol=1e-5,
    rtol=1e-3,
    fast_mode=False,
    raise_exception=True,
    nondet_tol=0.0,
    progress=None,
):
    """Check the gradients of ``fn`` at ``inputs`` against central finite differences.

    ``inputs`` is a Tensor or a tuple (non-Tensors are passed to ``fn`` untouched); every
    input with ``requires_grad=True`` is checked against every floating-point output of
    ``fn`` (a Tensor or a tuple).  An entry passes when
    ``|analytic - numerical| <= atol + rtol * |numerical|``, with
    ``numerical = (f(x + eps) - f(x - eps)) / (2 eps)`` (``torch.autograd.gradcheck``).
    Inputs should be float64; float32 ones give a warning.  Backward is run twice and the
    two results must agree within ``nondet_tol``.

    ``fast_mode=True`` compares ``u^T J v`` for random unit vectors instead of whole
    Jacobians: a few forward and backward passes, whatever the number of parameters.

    ``progress`` (full checks only): None shows a bar on stderr, when it is a terminal, for
    checks perturbing more than ``PROGRESS_ELEMENTS`` elements; True shows it whatever the
    size (still only on a terminal); False never; or a callable ``progress(done, total,
    label)`` such as a ``Progress`` on another stream.

    Returns True; on failure raises ``GradcheckError`` with a report naming the output and
    input and the worst entries, or returns False when ``raise_exception=False``.
    """
    inputs = _as_tuple(inputs)
    in_pos = _differentiable_inputs(inputs)
    try:
        if fast_mode:
            _fast_check(fn, inputs, in_pos, eps, atol, rtol, nondet_tol)
        else:
            _full_check(fn, inputs, in_pos, eps, atol, rtol, nondet_tol, progress)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def gradgradcheck(
    fn,
    inputs,
    grad_outputs=None,
    *,
    eps=1e-6,
    atol=1e-5,
    rtol=1e-3,
    fast_mode=False,
    raise_exception=True,
    nondet_tol=0.0,
    progress=None,
):
    """Check second derivatives: gradcheck of ``(inputs, v) -> grad(fn(inputs), inputs, v)``.

    The first derivatives are built with ``create_graph=True``; ``grad_outputs`` (one per
    floating-point output) default to fixed-seed random tensors that require grad, so the
    check also covers the derivative with respect to them (``torch.autograd.gradgradcheck``).
    """
    inputs = _as_tuple(inputs)
    in_pos = _differentiable_inputs(inputs, warn=False)
    with enable_grad():
        outputs = _as_tuple(fn(*inputs))
    out_pos = _output_positions(outputs)
    if grad_outputs is None:
        rng = np.random.default_rng(_SEED)
        grad_outputs = tuple(
            Tensor(
                rng.standard_normal(outputs[o].shape).astype(outputs[o].dtype), requires_grad=True
            )
            for o in out_pos
        )
    else:
        grad_outputs = _as_tuple(grad_outputs)
        if len(grad_outputs) != len(out_pos):
            raise ValueError(
                f"gradgradcheck: got {len(grad_outputs)} grad_outputs for "
                f"{len(out_pos)} floating-point outputs"
            )
    n = len(inputs)

    def first_derivatives(*args):
        xs, vs = args[:n], args[n:]
        with enable_grad():
            ys = _as_tuple(fn(*xs))
            pairs = [(ys[o], v) for o, v in zip(out_pos, vs) if ys[o].requires_grad]
            if not pairs:
                return tuple(Tensor(np.zeros(xs[i].shape)) for i in in_pos)
            grads = _grad(
                [y for y, _ in pairs],
                [xs[i] for i in in_pos],
                [v for _, v in pairs],
                create_graph=True,
                allow_unused=True,
            )
        return tuple(g for g in grads if g is not None)

    return gradcheck(
        first_derivatives,
        inputs + tuple(grad_outputs),
        eps=eps,
        atol=atol,
        rtol=rtol,
        fast_mode=fast_mode,
        raise_exception=raise_exception,
        nondet_tol=nondet_tol,
        progress=progress,
    )


# ----------------------------------------------------------------------------------------
# gradcheck_graph: check each recorded node's rule on its own inputs


@dataclass
class NodeCheck:
    """The verdict on one node of the graph.

    ``status`` is 'ok', 'failed', 'inconclusive' (not differentiable at its recorded
    inputs, so finite differences cannot judge it) or 'skipped' (nothing to check).
    ``mode`` is 'full' (every Jacobian entry) or 'directional' (random probes u^T J v).
    """

    position: int
    name: str
    op_name: str
    site: str | None
    input_shapes: tuple
    output_shape: tuple
    mode: str = "full"
    status: str = "ok"
    input_index: int | None = None
    max_abs_error: float = 0.0
    analytic: float | None = None
    numerical: float | None = None
    tolerance: float | None = None
    detail: str = ""
    node: object = field(default=None, repr=False)

    @property
    def ok(self):
        return self.status != "failed"

    def summary(self):
        site = self.site or "site not recorded"
        shapes = ", ".join(str(s) for s in self.input_shapes)
        return (
            f"#{self.position:<3} {self.name:<22} {self.status:<12} {self.mode:<11} "
            f"max err {self.max_abs_error:<9.3g} inputs {shapes}  at {site}"
        )


class GraphCheckReport(list):
    """The ``NodeCheck`` of every node, in forward (topological) order."""

    @property
    def ok(self):
        return all(r.ok for r in self)

    @property
    def failures(self):
        return [r for r in self if r.status == "failed"]

    @property
    def first_failure(self):
        failures = self.failures
        return failures[0] if failures else None

    def __str__(self):
        counts = {
            s: sum(r.status == s for r in self) for s in ("ok", "failed", "inconclusive", "skipped")
        }
        head = f"gradcheck_graph: {len(self)} nodes: " + ", ".join(
            f"{n} {s}" for s, n in counts.items() if n
        )
        return "\n".join([head] + ["  " + r.summary() for r in self])


def _graph_nodes(roots):
    """Tensors with a recorded node reachable from ``roots``, inputs before their users."""
    return walk(roots, leaves=False, caller="gradcheck_graph")[0]


def _node_forward(node, inputs, needs):
    """A float64 forward for ``node``: arrays -> (output, params for its VJP)."""
    op = node.op
    if isinstance(op, _FunctionOp):

        def run(arrays):
            ctx = FunctionCtx(tuple(needs))
            args = [Tensor._make(x) if isinstance(a, Tensor) else x for x, a in zip(arrays, inputs)]
            return np.asarray(op.run(ctx, args)), (ctx,)

        return run
    params = tuple(node.params)
    if op is ops.astype and np.issubdtype(np.dtype(params[0]), np.floating):
        params = (np.dtype(np.float64),)  # a cast to float32 would hide the check in noise

    def run(arrays):
        return np.asarray(op.forward(*arrays, *params)), params

    return run


def _node_vjp(node, run, arrays, needs, g):
    """The node's rule applied to ``g`` at ``arrays``, reduced to each input's shape."""
    out, params = run(arrays)
    grads = node.op.vjp(ops.NUMPY, g, out, list(arrays), params, list(needs))
    result = {}
    for k, (need, ga) in enumerate(zip(needs, grads)):
        if not need:
            continue
        shape = np.shape(arrays[k])
        if ga is None:
            result[k] = np.zeros(shape)
            continue
        ga = np.asarray(ga._array if isinstance(ga, Tensor) else ga, dtype=np.float64)
        if ga.shape != shape:
            try:
                ga = ops.unbroadcast(ops.NUMPY, ga, shape)
            except ValueError:
                raise ValueError(
                    f"the rule returned a gradient of shape {ga.shape} for "
                    f"input {k} of shape {shape}"
                ) from None
        result[k] = ga
    return result


def _check_node(position, tensor, eps, atol, rtol, fast_mode, rng):
    node = tensor._node
    inputs = list(node.inputs)
    arrays = []
    for a in inputs:
        if isinstance(a, Tensor):
            floating = np.issubdtype(a.dtype, np.floating)
            arrays.append(a._array.astype(np.float64) if floating else a._array.copy())
        else:
            arrays.append(a)
    needs = [
        isinstance(a, Tensor) and a.requires_grad and np.issubdtype(a.dtype, np.floating)
        for a in inputs
    ]
    result = NodeCheck(
        position,
        node.name(),
        node.op.name,
        node.site,
        tuple(tuple(np.shape(x)) for x in arrays if x is not None),
        tuple(tensor.shape),
        node=node,
    )
    if not any(needs):
        result.status, result.detail = "skipped", "no input requires grad"
        return result
    run = _node_forward(node, inputs, needs)
    try:
        out, _ = run(arrays)
    except Exception as e:  # the forward cannot be replayed in float64
        result.status = "skipped"
        result.detail = f"forward could not be re-run on float64 copies: {e}"
        return result
    if out.dtype != np.float64:
        result.status = "skipped"
        result.detail = f"forward computes in {out.dtype} even on float64 inputs"
        return result
    n_in = sum(np.size(arrays[k]) for k, need in enumerate(needs) if need)
    full = (
        (out.size <= _NODE_FULL_OUT and n_in <= _NODE_FULL_IN)
        if fast_mode is None
        else not fast_mode
    )
    result.mode = "full" if full else "directional"
    try:
        if full:
            _node_full(result, run, node, arrays, needs, out, eps, atol, rtol)
        else:
            _node_directional(result, run, node, arrays, needs, out, eps, atol, rtol, rng)
    except Exception as e:  # a rule that raises is a broken rule
        result.status = "failed"
        result.detail = f"the gradient rule raised {type(e).__name__}: {e}"
    return result


def _perturb(run, arrays, k, pos, delta):
    """Forward output with arrays[k][pos] += delta (arrays[k] restored after)."""
    x = arrays[k]
    orig = x[pos].copy() if pos is not Ellipsis else x.copy()
    try:
        if pos is Ellipsis:
            x[...] = orig + delta
        else:
            x[pos] = orig + delta
        return run(arrays)[0].astype(np.float64)
    finally:
        x[pos] = orig


def _node_full(result, run, node, arrays, needs, out, eps, atol, rtol):
    worst = None  # (ratio, input, analytic, numerical, abs err, tolerance, where)
    kink_count = 0
    columns = {
        k: _node_numerical_columns(run, arrays, k, out, eps) for k, need in enumerate(needs) if need
    }
    for j in range(out.size):
        seed = np.zeros(out.shape)
        seed.reshape(-1)[j] = 1
        for k, ga in _node_vjp(node, run, arrays, needs, seed).items():
            row = ga.reshape(-1)
            c, left, right = (m[j] for m in columns[k])
            with np.errstate(all="ignore"):
                tol = atol + rtol * np.abs(c)
                err = np.abs(row - c)
                kink = np.abs(left - right) > 2 * tol
                ratio = np.where(np.isnan(err), np.inf, err / tol)
            bad = ~(err <= tol)
            kink_count += int(np.sum(bad & kink))
            bad &= ~kink
            finite = err[np.isfinite(err)]
            if finite.size:
                result.max_abs_error = max(result.max_abs_error, float(finite.max()))
            if bad.any():
                m = int(np.argmax(np.where(bad, ratio, -1)))
                if worst is None or ratio[m] > worst[0]:
                    where = (
                        f"d out{_pos(np.unravel_index(j, out.shape))} / d input "
                        f"{k}{_pos(np.unravel_index(m, np.shape(arrays[k])))}"
                    )
                    worst = (
                        ratio[m],
                        k,
                        float(row[m]),
                        float(c[m]),
                        float(err[m]),
                        float(tol[m]),
                        where,
                    )
    _verdict(result, worst, kink_count, "entries")


def _node_numerical_columns(run, arrays, k, out, eps):
    """(central, left, right) difference Jacobians of the node output w.r.t. arrays[k]."""
    x = arrays[k]
    f0 = out.reshape(-1).astype(np.float64)
    shape = (out.size, x.size)
    c, left, right = np.empty(shape), np.empty(shape), np.empty(shape)
    for flat in range(x.size):
        pos = np.unravel_index(flat, x.shape)
        plus = _perturb(run, arrays, k, pos, eps).reshape(-1)
        minus = _perturb(run, arrays, k, pos, -eps).reshape(-1)
        with np.errstate(all="ignore"):
            c[:, flat] = (plus - minus) / (2 * eps)
            left[:, flat] = (f0 - minus) / eps
            right[:, flat] = (plus - f0) / eps
    return c, left, right


def _node_directional(result, run, node, arrays, needs, out, eps, atol, rtol, rng):
    worst = None
    kink_count = 0
    f0 = out.astype(np.float64)
    for _ in range(_PROBES):
        (u,) = _unit_vectors(rng, [out.shape])
        grads = _node_vjp(node, run, arrays, needs, u)
        for k, ga in grads.items():
            (v,) = _unit_vectors(rng, [np.shape(arrays[k])])
            a = float(np.sum(ga * v))
            plus = _perturb(run, arrays, k, Ellipsis, eps * v)
            minus = _perturb(run, arrays, k, Ellipsis, -eps * v)
            with np.errstate(all="ignore"):
                n = float(np.sum(u * (plus - minus))) / (2 * eps)
                left = float(np.sum(u * (f0 - minus))) / eps
                right = float(np.sum(u * (plus - f0))) / eps
            tol = atol + rtol * abs(n)
            err = abs(a - n)
            if np.isfinite(err):
                result.max_abs_error = max(result.max_abs_error, err)
            if err <= tol:
                continue
            if abs(left - right) > 2 * tol:
                kink_count += 1
                continue
            ratio = np.inf if not np.isfinite(err) else err / tol
            if worst is None or ratio > worst[0]:
                worst = (ratio, k, a, n, err, tol, f"u^T J v for input {k}")
    _verdict(result, worst, kink_count, "probes")


def _verdict(result, worst, kink_count, unit):
    if worst is not None:
        _, k, a, n, err, tol, where = worst
        result.status = "failed"
        result.input_index = k
        result.analytic, result.numerical, result.tolerance = a, n, tol
        result.max_abs_error = err if np.isfinite(err) else result.max_abs_error
        result.detail = (
            f"worst {where}: analytic {a:.6g}, numerical {n:.6g}, abs err "
            f"{err:.3g}, tolerance {tol:.3g}"
        )
        if not np.isfinite(n):
            result.detail += (
                " (the numerical derivative is not finite: the op is undefined "
                "or not differentiable at its recorded inputs)"
            )
    elif kink_count:
        result.status = "inconclusive"
        result.detail = (
            f"{kink_count} {unit} disagree at points where the op is not "
            f"differentiable (one-sided differences differ), so finite "
            f"differences cannot judge its rule there"
        )


def gradcheck_graph(
    output, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, fast_mode=None
):
    """Check every node recorded for ``output`` and name the first whose rule is wrong.

    Each node's gradient rule (a primitive's VJP or a ``Function.backward``) is evaluated
    on float64 copies of that node's own saved inputs and compared with central finite
    differences of its forward.  Nodes with few elements get their full Jacobian checked,
    larger ones random directional probes (``fast_mode=True``/``False`` forces one way).
    Call it before ``backward`` frees the graph (or after ``backward(retain_graph=True)``).
    Forwards are re-run many times, so they must be deterministic.  A node whose inputs sit
    on a kink (relu at 0, tied maxima) is reported 'inconclusive', not failed.

    Returns a ``GraphCheckReport`` (a list of ``NodeCheck``, forward order).  When a rule
    disagrees it raises ``GradcheckError`` naming the first such node: op, creation site
    (recorded under ``tg.autograd.detect_anomaly()``), input shapes and worst error; with
    ``raise_exception=False`` it returns the report, whose ``.ok`` is then False.
    """
    roots = _as_tuple(output)
    for r in roots:
        if not isinstance(r, Tensor):
            raise TypeError(f"gradcheck_graph expects Tensors, got {type(r).__name__}")
    tensors = _graph_nodes(roots)
    if not tensors:
        raise ValueError(
            "gradcheck_graph: the output has no recorded graph (grad_fn is "
            "None); build it from tensors with requires_grad=True while grad "
            "mode is on"
        )
    rng = np.random.default_rng(_SEED)
    report = GraphCheckReport(
        _check_node(k, t, eps, atol, rtol, fast_mode, rng) for k, t in enumerate(tensors)
    )
    first = report.first_failure
    if first is None or not raise_exception:
        return report
    lines = [
        f"gradcheck_graph: the gradient rule of node #{first.position} of {len(report)}, "
        f"'{first.op_name}' ({first.name}), disagrees with finite differences of its "
        f"forward",
        f"  created at: {first.site or _NO_SITE}",
        f"  input shapes: {', '.join(str(s) for s in first.input_shapes)}; output shape "
        f"{first.output_shape}",
        f"  check: {first.mode}; {first.detail}",
    ]
    if first.input_index is not None:
        lines.append(f"  the wrong gradient is the one for input {first.input_index}")
    passed = sum(r.status == "ok" for r in report[: first.position])
    lines.append(f"  {passed} node(s) before it passed")
    later = report.failures[1:]
    if later:
        lines.append(
            "  other nodes whose own rules also failed: "
            + ", ".join(f"#{r.position} '{r.op_name}'" for r in later)
        )
    raise GradcheckError(
        "\n".join(lines),
        input_index=first.input_index,
        analytic=first.analytic,
        numerical=first.numerical,
        node=first,
        report=report,
    )
