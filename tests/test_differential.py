"""Differential tests against torch: random op programs, dtype matrices, special points.

A seeded generator writes small programs (2 to 5 ops drawn from elementwise, binary,
reduction, shape and indexing ops) on inputs that mix random values with special points
(0, +-1, +-0.5, 2, and sometimes inf and NaN).  Each program runs in tinygrad_init and in
torch on the same data; the forward values, the gradients of every input and whether an
error is raised (and its type) must agree.  A second generator checks the result dtype and
values of binary ops over a matrix of dtypes and operand kinds (dimensioned tensors, 0-d
tensors, Python and numpy scalars).

The normal test run draws a few hundred cases in about a second; set TG_DIFF_CASES (e.g.
TG_DIFF_CASES=2000) for a larger sweep.  A failure prints the seed and the program, which
is enough to replay it.
"""

import os

import numpy as np
import pytest

import tinygrad_init as tg

torch = pytest.importorskip("torch")

CASES = int(os.environ.get("TG_DIFF_CASES", "200"))
SPECIAL = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0])
NONFINITE = np.array([np.inf, -np.inf, np.nan])


def _values(rng, shape, nonfinite):
    """Normal samples with about a third replaced by special points."""
    x = rng.standard_normal(shape)
    pick = rng.random(shape) < 0.35
    x[pick] = rng.choice(SPECIAL, size=int(pick.sum()))
    if nonfinite:
        bad = rng.random(shape) < 0.1
        x[bad] = rng.choice(NONFINITE, size=int(bad.sum()))
    return x


# Each op: (name, arity, draw(rng, shape) -> params, run(m, params, x[, y])); ``m`` is the
# module (tinygrad_init or torch).  Ops that change the shape return it from ``shape_of``.
def _dim(rng, shape):
    return int(rng.integers(-len(shape), len(shape))) if shape else 0


UNARY = {
    "exp": lambda m, p, x: x.exp(),
    "log": lambda m, p, x: x.log(),
    "sqrt": lambda m, p, x: x.sqrt(),
    "abs": lambda m, p, x: x.abs(),
    "sin": lambda m, p, x: x.sin(),
    "cos": lambda m, p, x: x.cos(),
    "tanh": lambda m, p, x: x.tanh(),
    "sigmoid": lambda m, p, x: x.sigmoid(),
    "relu": lambda m, p, x: x.relu(),
    "neg": lambda m, p, x: -x,
    "square": lambda m, p, x: x * x,
    "pow_const": lambda m, p, x: x ** p["k"],
    "clamp": lambda m, p, x: x.clamp(p["lo"], p["hi"]),
    "scalar_div": lambda m, p, x: p["k"] / x,
}
BINARY = {
    "add": lambda m, p, x, y: x + y,
    "sub": lambda m, p, x, y: x - y,
    "mul": lambda m, p, x, y: x * y,
    "div": lambda m, p, x, y: x / y,
    "pow": lambda m, p, x, y: x**y,
    "maximum": lambda m, p, x, y: m.maximum(x, y),
    "minimum": lambda m, p, x, y: m.minimum(x, y),
    "where": lambda m, p, x, y: m.where(x > y, x, y),
}
REDUCE = {
    "sum": lambda m, p, x: x.sum(p["dim"], keepdim=p["keep"]),
    "mean": lambda m, p, x: x.mean(p["dim"], keepdim=p["keep"]),
    "var": lambda m, p, x: x.var(p["dim"], keepdim=p["keep"]),
    "std": lambda m, p, x: x.std(p["dim"], keepdim=p["keep"]),
    "max_dim": lambda m, p, x: x.max(p["dim"], keepdim=p["keep"])[0],
    "min_dim": lambda m, p, x: x.min(p["dim"], keepdim=p["keep"])[0],
    "max": lambda m, p, x: x.max(),
    "logsumexp": lambda m, p, x: x.logsumexp(p["dim"], keepdim=p["keep"]),
    "softmax": lambda m, p, x: x.softmax(p["dim"]),
    "log_softmax": lambda m, p, x: x.log_softmax(p["dim"]),
}
SHAPE = {
    "transpose": lambda m, p, x: x.transpose(p["dim"], -1),
    "flatten": lambda m, p, x: x.flatten(),
    "unsqueeze": lambda m, p, x: x.unsqueeze(p["dim"]),
    "index": lambda m, p, x: x[p["index"]],
    "mixed_index": lambda m, p, x: x[p["mixed"]],
}


def _draw_params(rng, shape):
    nd = len(shape)
    p = {
        "k": float(rng.choice([0.0, 1.0, 2.0, 3.0, -1.0, 0.5, -2.0])),
        "lo": float(rng.choice([-1.0, 0.0, -0.5])),
        "hi": float(rng.choice([0.5, 1.0, 2.0])),
        "dim": _dim(rng, shape),
        "keep": bool(rng.random() < 0.5),
        "index": slice(0, max(1, shape[0] // 2)) if nd else (),
        "mixed": None,
    }
    if nd >= 2:
        cols = [int(i) for i in rng.integers(0, shape[-1], size=2)]
        p["mixed"] = (0,) + (slice(None),) * (nd - 2) + (cols,)
    return p


def _program(rng):
    """A random program: its input shapes and a list of (kind, name, params)."""
    nd = int(rng.integers(0, 4))
    shape = tuple(int(n) for n in rng.integers(1, 4, size=nd))
    other = tuple(1 if rng.random() < 0.3 else n for n in shape[int(rng.integers(0, nd + 1)) :])
    steps = []
    current = shape
    for _ in range(int(rng.integers(2, 6))):
        kinds = ["unary", "binary", "reduce"] + (["shape"] if current else [])
        kind = kinds[int(rng.integers(0, len(kinds)))]
        table = {"unary": UNARY, "binary": BINARY, "reduce": REDUCE, "shape": SHAPE}[kind]
        names = sorted(table)
        if kind == "shape" and len(current) < 2:
            names.remove("mixed_index")
        name = names[int(rng.integers(0, len(names)))]
        params = _draw_params(rng, current)
        if name in ("var", "std") and (not current or current[params["dim"]] < 2):
            continue  # one sample: var is 0/0 = NaN in both, but the NaN's gradient differs
        steps.append((kind, name, params))
        current = _probe_shape(current, other, kind, name, params)
        if current is None:
            break
    return shape, other, steps


def _probe_shape(shape, other, kind, name, params):
    """The shape after one step (run on zeros in numpy-backed tinygrad_init)."""
    try:
        x = tg.zeros(*shape, dtype=np.float64)
        y = tg.zeros(*other, dtype=np.float64)
        out = _step(tg, x, y, kind, name, params)
        return tuple(out.shape)
    except Exception:
        return None


def _step(m, x, y, kind, name, params):
    if kind == "binary":
        return BINARY[name](m, params, x, y)
    table = {"unary": UNARY, "reduce": REDUCE, "shape": SHAPE}[kind]
    return table[name](m, params, x)


def _run(m, xs, ys, dtype, steps):
    """Forward and backward of a program; returns (value, grads) or the exception."""
    if m is tg:
        x = tg.tensor(xs.astype(dtype), requires_grad=True)
        y = tg.tensor(ys.astype(dtype), requires_grad=True)
    else:
        x = torch.tensor(xs.astype(dtype), requires_grad=True)
        y = torch.tensor(ys.astype(dtype), requires_grad=True)
    try:
        out = x
        for kind, name, params in steps:
            out = _step(m, out, y, kind, name, params)
        value = out.detach().numpy().copy()
        out.sum().backward()
    except Exception as e:  # compared across frameworks below
        return e
    grads = [None if t.grad is None else t.grad.numpy().copy() for t in (x, y)]
    return value, grads


def _close(a, b, dtype):
    tol = 2e-4 if dtype == np.float32 else 1e-7
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


def _check_program(seed):
    rng = np.random.default_rng(seed)
    shape, other, steps = _program(rng)
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    nonfinite = rng.random() < 0.15
    xs, ys = _values(rng, shape, nonfinite), _values(rng, other, nonfinite)
    if nonfinite and any(name in KNOWN_NONFINITE for _, name, _ in steps):
        return "skipped"
    with np.errstate(all="ignore"):
        ours = _run(tg, xs, ys, dtype, steps)
    theirs = _run(torch, xs, ys, dtype, steps)
    where = f"seed {seed}: shapes {shape} {other} {np.dtype(dtype)} steps {steps}"
    if isinstance(theirs, Exception) or isinstance(ours, Exception):
        assert isinstance(theirs, Exception) and isinstance(ours, Exception), (
            f"{where}: one side raised: ours {ours!r:.200}, torch {theirs!r:.200}"
        )
        assert isinstance(ours, type(theirs)), f"{where}: ours {ours!r}, torch {theirs!r}"
        return "error"
    (v, g), (tv, tgr) = ours, theirs
    if np.isnan(tv).any() and any(name in KNOWN_NONFINITE for _, name, _ in steps):
        return "skipped"  # an inf can also arise inside the program (0 ** -1)
    assert v.shape == tv.shape, f"{where}: shape {v.shape} vs torch {tv.shape}"
    try:
        _close(v, tv, dtype)
    except AssertionError as e:
        raise AssertionError(f"{where}: value\n{e}") from None
    for k, (a, b) in enumerate(zip(g, tgr)):
        assert (a is None) == (b is None), f"{where}: grad {k} presence differs"
        if a is not None:
            try:
                _close(a, b, dtype)
            except AssertionError as e:
                raise AssertionError(f"{where}: gradient of input {k}\n{e}") from None
    return "value"


# Known differences, on inputs holding inf or NaN only: softmax and log_softmax of a row
# holding +inf are NaN in torch (x - max - log(sum(exp(x - max)))), while x - logsumexp(x)
# here gives -inf for the finite entries; (-inf) ** 0.5 is inf in torch's tensor pow and
# NaN in numpy's.
KNOWN_NONFINITE = {"softmax", "log_softmax", "pow"}


def test_random_programs_match_torch():
    outcomes = {"value": 0, "error": 0, "skipped": 0}
    for seed in range(CASES):
        outcomes[_check_program(seed)] += 1
    assert outcomes["value"] > CASES // 2  # most programs are valid, not errors


# ----------------------------------------------------------------------------------------
# dtype matrix


DTYPES = ["bool", "int32", "int64", "uint8", "float16", "float32", "float64"]
MATRIX_OPS = {
    "add": lambda m, x, y: x + y,
    "mul": lambda m, x, y: x * y,
    "div": lambda m, x, y: x / y,
    "sub": lambda m, x, y: x - y,
    "maximum": lambda m, x, y: m.maximum(x, y),
}
KINDS = ["tensor", "zero_d", "python", "numpy"]


def _operand(kind, dtype, m):
    """An operand of ``kind``: a 1-d tensor, a 0-d tensor, a Python or a numpy scalar."""
    values = np.array([1, 2, 3]).astype(dtype)
    if kind == "tensor":
        return m.tensor(values) if m is tg else torch.tensor(values)
    if kind == "zero_d":
        return m.tensor(values[1]) if m is tg else torch.tensor(values[1])
    if kind == "python":
        return values[1].item()
    return values[1]  # a numpy scalar


@pytest.mark.parametrize("op", sorted(MATRIX_OPS))
def test_dtype_matrix_matches_torch(op):
    checked = 0
    cases = [(da, db, kb) for da in DTYPES for db in DTYPES for kb in KINDS]
    for da, db, kb in cases:
        if kb in ("python", "numpy") and db in ("int32", "uint8", "float16"):
            continue  # a Python number has no such dtype; numpy's are the same cases again
        if kb == "numpy" and db == "bool":
            continue  # torch reads np.bool_ as a float number (bool tensor + np.True_ is
            # float32); here it is a bool, like Python's True
        if op == "maximum" and kb in ("python", "numpy"):
            continue  # torch.maximum takes tensors only
        pair = []
        for m in (tg, torch):
            a, b = _operand("tensor", da, m), _operand(kb, db, m)
            try:
                out = MATRIX_OPS[op](m, a, b)
                pair.append((str(out.dtype).replace("torch.", ""), out.numpy().astype(float)))
            except Exception as e:
                pair.append(type(e))
        (ours, theirs), where = pair, f"{op}: {da} tensor with {db} {kb}"
        if isinstance(theirs, type):
            assert isinstance(ours, type) and issubclass(ours, theirs), f"{where}: {ours}"
            continue
        assert not isinstance(ours, type), f"{where}: raised {ours}, torch gives {theirs[0]}"
        assert ours[0] == theirs[0], f"{where}: dtype {ours[0]}, torch {theirs[0]}"
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-3, err_msg=where)
        checked += 1
    assert checked > 80
