"""``strict=True`` in tg.autograd.functional: torch's RuntimeErrors, word for word."""

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init.autograd import functional as AF

R = np.random.default_rng(12)
X, Y, V = R.standard_normal(3), R.standard_normal(3), R.standard_normal(3)


def _w(lib):
    """A closed-over tensor that requires grad (a parameter, to the function)."""
    return lib.tensor([0.5, -1.0, 2.0], dtype=lib.float64, requires_grad=True)


# (name, api, function of (lib, w), number of inputs, kwargs, torch's message or None)
CASES = [
    (
        "vjp_detached",
        "vjp",
        lambda w: lambda x: x.detach() * 2,
        1,
        {},
        "Output 0 of the user-provided function does not require gradients.",
    ),
    (
        "vjp_unused",
        "vjp",
        lambda w: lambda x, y: x.sin(),
        2,
        {},
        "The output of the user-provided function is independent of input 1.",
    ),
    (
        "vjp_linear_graph",
        "vjp",
        lambda w: lambda x: x * 2,
        1,
        {"create_graph": True},
        "The jacobian of the user-provided function is independent of input 0. This is not "
        "allowed in strict mode when create_graph=True.",
    ),
    ("vjp_ok", "vjp", lambda w: lambda x, y: x.sin() * y, 2, {"create_graph": True}, None),
    (
        "jvp_unused",
        "jvp",
        lambda w: lambda x, y: x.sin(),
        2,
        {},
        "The output of the user-provided function is independent of input 1.",
    ),
    (
        "jvp_parameter_only",
        "jvp",
        lambda w: lambda x: (x.sin(), w * 3),
        1,
        {},
        "The gradient with respect to the input is independent of entry 1 in the grad_outputs",
    ),
    (
        "jvp_linear_graph",
        "jvp",
        lambda w: lambda x: x * 2,
        1,
        {"create_graph": True},
        "The jacobian of the user-provided function is independent of input 0. This is not "
        "allowed in strict mode when create_graph=True.",
    ),
    ("jvp_ok", "jvp", lambda w: lambda x: (x * x).cos(), 1, {"create_graph": True}, None),
    (
        "jac_detached",
        "jacobian",
        lambda w: lambda x: x.detach(),
        1,
        {},
        "Output 0 of the user-provided function does not require gradients.",
    ),
    (
        "jac_unused",
        "jacobian",
        lambda w: lambda x, y: (x * y, x.sin()),
        2,
        {},
        "Output 1 of the user-provided function is independent of input 1. This is not allowed "
        "in strict mode.",
    ),
    (
        "jac_linear_graph",
        "jacobian",
        lambda w: lambda x: x * 3,
        1,
        {"create_graph": True},
        "The jacobian of the user-provided function is independent of input 0. This is not "
        "allowed in strict mode when create_graph=True.",
    ),
    (
        "jac_vectorized",
        "jacobian",
        lambda w: lambda x: x.sin(),
        1,
        {"vectorize": True},
        "torch.autograd.functional.jacobian: `strict=True` and `vectorized=True` are not "
        "supported together. Please either set `strict=False` or `vectorize=False`.",
    ),
    (
        "jac_forward",
        "jacobian",
        lambda w: lambda x: x.sin(),
        1,
        {"vectorize": True, "strategy": "forward-mode"},
        'torch.autograd.functional.jacobian: `strict=True` and `strategy="forward-mode"` are '
        "not supported together (yet).",
    ),
    ("jac_ok", "jacobian", lambda w: lambda x, y: (x * y).exp(), 2, {"create_graph": True}, None),
    (
        "hess_linear",
        "hessian",
        lambda w: lambda x: (x * 2).sum(),
        1,
        {},
        "While computing the hessian, found that the jacobian of the user-provided function with "
        "respect to input 0 is independent of the input.",
    ),
    (
        "hess_unused",
        "hessian",
        lambda w: lambda x, y: (x**3).sum(),
        2,
        {},
        "While computing the hessian, found that the jacobian of the user-provided function with "
        "respect to input 1 is independent of the input.",
    ),
    (
        "hess_separable",
        "hessian",
        lambda w: lambda x, y: (x**3).sum() + (y**3).sum(),
        2,
        {},
        "Output 0 of the user-provided function is independent of input 1. This is not allowed "
        "in strict mode.",
    ),
    (
        "hess_quadratic_graph",
        "hessian",
        lambda w: lambda x: (x * x).sum(),
        1,
        {"create_graph": True},
        "The jacobian of the user-provided function is independent of input 0. This is not "
        "allowed in strict mode when create_graph=True.",
    ),
    (
        "hess_forward",
        "hessian",
        lambda w: lambda x: (x**3).sum(),
        1,
        {"vectorize": True, "outer_jacobian_strategy": "forward-mode"},
        '`strict=True` and `strategy="forward-mode"` are not supported together (yet).',
    ),
    (
        "hess_ok",
        "hessian",
        lambda w: lambda x, y: (x**2 * y**2).sum(),
        2,
        {"create_graph": True},
        None,
    ),
]
for _api in ("hvp", "vhp"):
    CASES += [
        (
            f"{_api}_detached",
            _api,
            lambda w: lambda x: x.detach().sum(),
            1,
            {},
            "Output 0 of the user-provided function does not require gradients.",
        ),
        (
            f"{_api}_linear",
            _api,
            lambda w: lambda x: (x * 2).sum(),
            1,
            {},
            "While computing the hessian, found that the jacobian of the user-provided function "
            "with respect to input 0 is independent of the input.",
        ),
        (
            f"{_api}_unused",
            _api,
            lambda w: lambda x, y: (x**3).sum(),
            2,
            {},
            "The output of the user-provided function is independent of input 1. This is not "
            "allowed in strict mode.",
        ),
        (
            f"{_api}_quadratic_graph",
            _api,
            lambda w: lambda x: (x * x).sum(),
            1,
            {"create_graph": True},
            "The hessian of the user-provided function is independent of input 0. This is not "
            "allowed in strict mode when create_graph=True.",
        ),
        (
            f"{_api}_ok",
            _api,
            lambda w: lambda x, y: (x**3 * y).sum(),
            2,
            {"create_graph": True},
            None,
        ),
    ]
CASES += [
    ("vhp_parameter_only", "vhp", lambda w: lambda x: (w * x).sum(), 1, {},
     "The jacobian of the user-provided function is independent of input 0. This is not "
     "allowed in strict mode."),
    ("hvp_parameter_only", "hvp", lambda w: lambda x: (w * x).sum(), 1, {},
     "The hessian of the user-provided function is independent of entry 0 in the "
     "grad_jacobian. This is not allowed in strict mode as it prevents from using the double "
     "backward trick to replace forward mode AD."),
]  # fmt: skip


def _call(module, lib, api, make, n, kwargs):
    xs = tuple(lib.tensor(a, dtype=lib.float64) for a in (X, Y)[:n])
    f = make(_w(lib))
    args = [f, xs[0] if n == 1 else xs]
    if api == "vjp":
        out = f(*xs)
        args.append(tuple(lib.ones_like(o) for o in out) if isinstance(out, tuple) else
                    lib.ones_like(out))  # fmt: skip
    elif api != "jacobian" and api != "hessian":
        vs = tuple(lib.tensor(V, dtype=lib.float64) for _ in xs)
        args.append(vs[0] if n == 1 else vs)
    return getattr(module, api)(*args, strict=True, **kwargs)


def _flat(result):
    if isinstance(result, tuple):
        return [t for r in result for t in _flat(r)]
    return [result]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_strict_matches_torch(case):
    name, api, make, n, kwargs, message = case
    if message is None:
        ours = _flat(_call(AF, tg, api, make, n, kwargs))
        assert ours and all(t.requires_grad for t in ours[-n:])
        torch = pytest.importorskip("torch")
        theirs = _flat(_call(torch.autograd.functional, torch, api, make, n, kwargs))
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-12)
            assert a.requires_grad == b.requires_grad
        return
    with pytest.raises(RuntimeError) as ours:
        _call(AF, tg, api, make, n, kwargs)
    assert message in str(ours.value)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        _call(torch.autograd.functional, torch, api, make, n, kwargs)
    assert str(ours.value) == str(theirs.value)


def test_strict_counts_structural_dependence_as_torch_does():
    """A path through ``x * 0`` is a dependence: no error, and a zero Jacobian."""
    x = tg.tensor(X, dtype=tg.float64)
    jac = AF.jacobian(lambda x: x * 0, x, strict=True)
    np.testing.assert_array_equal(jac.numpy(), np.zeros((3, 3)))


def test_forward_mode_refuses_create_graph_first():
    x = tg.tensor(X, dtype=tg.float64)
    with pytest.raises(NotImplementedError, match="`create_graph=True` and `strategy="):
        AF.jacobian(lambda x: x.sin(), x, create_graph=True, strict=True,
                    strategy="forward-mode")  # fmt: skip
