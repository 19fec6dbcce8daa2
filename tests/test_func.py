"""tinygrad_init.func: tangent rules against the VJP rules and finite differences, the
transforms against closed forms, finite differences and torch.func."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_init as tg
from tinygrad_init import func, ops

R = np.random.default_rng(0)


def _r(*shape, lo=-1.0, hi=1.0):
    return R.uniform(lo, hi, shape)


def _pos(*shape):
    return _r(*shape, lo=0.5, hi=2.0)


_GEOM = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
# name -> (differentiable inputs, constants appended to them, params)
CASES = {
    "add": ([_r(3, 4), _r(4)], [], ()),
    "sub": ([_r(3, 4), _r(3, 1)], [], ()),
    "mul": ([_r(3, 4), _r(4)], [], ()),
    "div": ([_r(3, 4), _pos(4)], [], ()),
    "pow": ([_pos(3, 4), _r(3, 4)], [], ()),
    "neg": ([_r(3)], [], ()),
    "matmul": ([_r(2, 3, 4), _r(4, 5)], [], ()),
    "exp": ([_r(3)], [], ()),
    "log": ([_pos(3)], [], ()),
    "sqrt": ([_pos(3)], [], ()),
    "abs": ([_pos(3) * np.array([1, -1, 1])], [], ()),
    "sin": ([_r(3)], [], ()),
    "cos": ([_r(3)], [], ()),
    "tanh": ([_r(3)], [], ()),
    "sigmoid": ([_r(3)], [], ()),
    "relu": ([np.array([-1.0, 0.5, 2.0])], [], ()),
    "clamp": ([np.array([-1.0, 0.2, 2.0])], [], (-0.5, 1.0)),
    "maximum": ([_r(3, 4), _r(4) + 3], [], ()),
    "minimum": ([_r(3, 4), _r(4) + 3], [], ()),
    "where": ([_r(3, 4), _r(4)], [], (_r(3, 4) > 0,)),
    "sum": ([_r(3, 4)], [], ((1,), False)),
    "amax": ([_r(3, 4)], [], ()),
    "amin": ([_r(3, 4)], [], ()),
    "max_dim": ([_r(3, 4)], [], (1, True)),
    "min_dim": ([_r(3, 4)], [], (0, False)),
    "logsumexp": ([_r(3, 4)], [], ((1,), False)),
    "clone": ([_r(3)], [], ()),
    "astype": ([_r(3)], [], (np.dtype(np.float64),)),
    "reshape": ([_r(3, 4)], [], ((2, 6),)),
    "permute": ([_r(2, 3, 4)], [], ((2, 0, 1),)),
    "expand": ([_r(3, 1)], [], ((2, 3, 4),)),
    "getitem": ([_r(5, 3)], [], ((np.array([0, 2, 2]), slice(1, 3)),)),
    "scatter": ([_r(3)], [], ((5,), np.array([0, 4, 0]))),
    "cat": ([_r(2, 3), _r(2, 1)], [], (1,)),
    "linear": ([_r(5, 3), _r(4, 3), _r(4)], [], ()),
    "conv2d": ([_r(2, 2, 5, 5), _r(3, 2, 3, 3), _r(3)], [], _GEOM),
    "max_pool2d": ([_r(2, 2, 4, 4)], [], ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), None)),
    "avg_pool2d": ([_r(2, 2, 4, 4)], [], ((2, 2), (1, 1), (1, 1, 1, 1), True, None)),
    "cross_entropy": ([_r(4, 3)], [], (np.array([0, 2, 1, 2]), None, None, 0.1, "none")),
    "mse_loss": ([_r(2, 3), _r(3)], [], ("mean",)),
    "erf": ([_r(3)], [], ()),
    "softplus": ([_r(3)], [], ()),
    "var": ([_r(3, 4)], [], ((1,), False, 1)),
    "std": ([_pos(3)], [], ()),
    "log1p": ([_pos(3)], [], ()),
    "expm1": ([_r(3)], [], ()),
    "atan": ([_r(3)], [], ()),
    "asin": ([_r(3) * 0.5], [], ()),
    "acos": ([_r(3) * 0.5], [], ()),
    "floor": ([_r(3)], [], ()),
    "ceil": ([_r(3)], [], ()),
    "round": ([_r(3)], [], ()),
    "trunc": ([_r(3)], [], ()),
    "cumsum": ([_r(3, 4)], [], (1,)),
    "prod": ([_r(3, 4)], [], (1, True)),
    "norm": ([_r(3, 4)], [], (2, (1,), False)),
}


def _primitives():
    return {name: p for name, p in vars(ops).items() if isinstance(p, ops.Primitive)}


def test_every_primitive_has_tangent_rules_and_a_case():
    prims = _primitives()
    assert sorted(CASES) == sorted(prims)
    assert all(p.jvps is not None for p in prims.values())


def _directional(prim, inputs, params, tangents, eps=1e-6):
    plus = prim.forward(*[x + eps * t for x, t in zip(inputs, tangents)], *params)
    minus = prim.forward(*[x - eps * t for x, t in zip(inputs, tangents)], *params)
    return (np.asarray(plus) - np.asarray(minus)) / (2 * eps)


@pytest.mark.parametrize("name", sorted(CASES))
def test_tangent_rule_is_adjoint_of_vjp_and_matches_finite_differences(name):
    prim = _primitives()[name]
    inputs, _, params = CASES[name]
    out = np.asarray(prim.forward(*inputs, *params))
    tangents = [R.standard_normal(x.shape) for x in inputs]
    jv = sum(
        np.broadcast_to(prim.jvp(i, ops.NUMPY, t, out, inputs, params), out.shape)
        for i, t in enumerate(tangents)
    )
    u = R.standard_normal(out.shape)
    grads = prim.vjp(ops.NUMPY, u, out, inputs, params, [True] * len(inputs))
    grads = [ops.unbroadcast(ops.NUMPY, np.asarray(g), x.shape) for g, x in zip(grads, inputs)]
    lhs = np.sum(u * jv)
    rhs = sum(np.sum(g * t) for g, t in zip(grads, tangents))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(jv, _directional(prim, inputs, params, tangents), atol=1e-6)


def test_recorded_conv_tangent_names_the_op():
    x = tg.tensor(_r(1, 1, 4, 4), requires_grad=True)
    w = tg.tensor(_r(1, 1, 3, 3))
    f = lambda x: tg.nn.functional.conv2d(x, w).sum()  # noqa: E731
    with pytest.raises(NotImplementedError, match="conv2d"):
        func.jvp(f, (x,), (tg.ones_like(x),))


# ----------------------------------------------------------------------------------------
# transforms

W = _r(3, 4)


def f_vec(x):
    return (tg.tensor(W) @ x).tanh() * x[:3].sin()


def f_scalar(x):
    return (x * x * x).sum() + (x[0] * x[1]).exp()


def _fd_jacobian(f, x, eps=1e-6):
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = eps
        e = e.reshape(x.shape)
        plus = f(tg.tensor(x + e)).numpy()
        minus = f(tg.tensor(x - e)).numpy()
        cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, -1).reshape(cols[0].shape + x.shape)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 1000))
def test_jacobians_match_finite_differences(n, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    w = np.random.default_rng(seed + 1).uniform(-1, 1, (3, n))

    def f(x):
        return (tg.tensor(w) @ x).tanh() * x[:3].exp()

    fd = _fd_jacobian(f, x)
    for jac in (func.jacrev, func.jacfwd):
        np.testing.assert_allclose(jac(f)(tg.tensor(x)).numpy(), fd, atol=1e-8)
    v = np.random.default_rng(seed + 2).standard_normal(n)
    _, t = func.jvp(f, (tg.tensor(x),), (tg.tensor(v),))
    np.testing.assert_allclose(t.numpy(), fd @ v, atol=1e-8)
    u = np.random.default_rng(seed + 3).standard_normal(3)
    _, vjp_fn = func.vjp(f, tg.tensor(x))
    np.testing.assert_allclose(vjp_fn(tg.tensor(u))[0].numpy(), u @ fd, atol=1e-8)


def _closed_hessian(x):
    """Hessian of sum(x^3) + exp(x0 x1)."""
    h = np.diag(6 * x)
    e = np.exp(x[0] * x[1])
    h[0, 0] += x[1] ** 2 * e
    h[1, 1] += x[0] ** 2 * e
    h[0, 1] = h[1, 0] = e * (1 + x[0] * x[1])
    return h


@pytest.mark.parametrize(
    "make",
    [
        func.hessian,
        lambda f: func.jacrev(func.jacrev(f)),
        lambda f: func.jacrev(func.jacfwd(f)),
        lambda f: func.jacfwd(func.jacfwd(f)),
    ],
)
def test_hessian_closed_form_every_nesting(make):
    x = _r(4)
    np.testing.assert_allclose(make(f_scalar)(tg.tensor(x)).numpy(), _closed_hessian(x), atol=1e-10)


def test_hvp_closed_form():
    x, v = _r(4), _r(4)
    (h,) = func.hvp(f_scalar, (tg.tensor(x),), (tg.tensor(v),))
    np.testing.assert_allclose(h.numpy(), _closed_hessian(x) @ v, atol=1e-10)


def test_inner_transform_treats_closed_over_primal_as_constant():
    # d/dx [x * d/dy (x * y)] = d/dx [x^2] = 2x (perturbation confusion would give 3x^2)
    def outer(x):
        return x * func.grad(lambda y: (x * y).sum())(tg.ones_like(x))

    x = tg.tensor([1.5, -2.0])
    np.testing.assert_allclose(func.jacrev(outer)(x).numpy(), np.diag(2 * x.numpy()))


def test_argnums_tuple_and_tuple_outputs():
    a, b = _r(3), _r(3)
    jac = func.jacrev(lambda a, b: (a * b, a.sum()), argnums=(0, 1))(tg.tensor(a), tg.tensor(b))
    np.testing.assert_allclose(jac[0][0].numpy(), np.diag(b))
    np.testing.assert_allclose(jac[0][1].numpy(), np.diag(a))
    np.testing.assert_allclose(jac[1][0].numpy(), np.ones(3))
    fwd = func.jacfwd(lambda a, b: (a * b, a.sum()), argnums=(0, 1))(tg.tensor(a), tg.tensor(b))
    for r, f in zip(jac, fwd):
        for x, y in zip(r, f):
            np.testing.assert_allclose(x.numpy(), y.numpy())


def test_per_sample_grad_matches_a_loop_of_single_sample_losses():
    model = tg.nn.Linear(3, 2)
    for p in model.parameters():
        p.data = p.data.double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = tg.tensor(_r(5, 3)), tg.tensor(_r(5, 2))

    def loss(p, xi, yi):
        out = func.functional_call(model, p, (xi.unsqueeze(0),))
        return ((out - yi) ** 2).sum()

    per = func.per_sample_grad(loss, params, x, y)
    assert per["weight"].shape == (5, 2, 3)
    w, b = params["weight"].numpy(), params["bias"].numpy()
    for n in range(5):
        r = 2 * (w @ x.numpy()[n] + b - y.numpy()[n])
        np.testing.assert_allclose(per["weight"].numpy()[n], np.outer(r, x.numpy()[n]))
        np.testing.assert_allclose(per["bias"].numpy()[n], r)
    assert model.weight is not params["weight"] and model.weight.requires_grad


def test_functional_call_rejects_unknown_key_and_restores_module():
    model = tg.nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match="Unexpected key\\(s\\): 'nope'"):
        func.functional_call(model, {"nope": tg.zeros(1)}, (tg.zeros(1, 2),))
    w = model.weight
    with pytest.raises(ValueError):
        func.functional_call(model, {"weight": tg.zeros(3, 3)}, (tg.zeros(1, 2),))
    assert model.weight is w


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: func.jvp(f_vec, tg.zeros(4), (tg.zeros(4),)), "Expected primals to be a tuple"),
        (
            lambda: func.jvp(f_vec, (tg.zeros(4),), (tg.zeros(3),)),
            "Expected primals and tangents to have same shape",
        ),
        (lambda: func.vjp(lambda x: 1.0, tg.zeros(2)), "unsupported type <class 'float'>"),
        (lambda: func.grad(lambda x: x * 2)(tg.zeros(2)), "to return a scalar Tensor"),
        (lambda: func.jacrev(f_vec, argnums=2)(tg.zeros(4)), "Got argnum=2"),
        (lambda: func.jacrev(f_vec)(tg.zeros(4, dtype=np.int64)), "floating point"),
    ],
)
def test_errors_name_the_argument(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


def test_against_torch_func():
    torch = pytest.importorskip("torch")
    x, v = _r(4), _r(4)

    def ft(x):
        return (torch.tensor(W) @ x).tanh() * x[:3].sin()

    def gt(x):
        return (x * x * x).sum() + (x[0] * x[1]).exp()

    tx, tv = torch.tensor(x), torch.tensor(v)
    pairs = [
        (func.jacrev(f_vec)(tg.tensor(x)), torch.func.jacrev(ft)(tx)),
        (func.jacfwd(f_vec)(tg.tensor(x)), torch.func.jacfwd(ft)(tx)),
        (func.jvp(f_vec, (tg.tensor(x),), (tg.tensor(v),))[1], torch.func.jvp(ft, (tx,), (tv,))[1]),
        (func.hessian(f_scalar)(tg.tensor(x)), torch.func.hessian(gt)(tx)),
        (func.grad(f_scalar)(tg.tensor(x)), torch.func.grad(gt)(tx)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-12)


# ----------------------------------------------------------------------------------------
# tg.autograd.functional


def test_autograd_functional_closed_forms():
    from tinygrad_init.autograd import functional as AF

    x, v = _r(4), _r(4)
    tx, tv = tg.tensor(x), tg.tensor(v)
    np.testing.assert_allclose(AF.hessian(f_scalar, tx).numpy(), _closed_hessian(x), atol=1e-10)
    for product in (AF.hvp, AF.vhp):
        value, h = product(f_scalar, tx, tv)
        np.testing.assert_allclose(h.numpy(), _closed_hessian(x) @ v, atol=1e-10)
        assert value.item() == pytest.approx(f_scalar(tx).item())
    jac = AF.jacobian(lambda a, b: a * b, (tx, tv))
    np.testing.assert_allclose(jac[0].numpy(), np.diag(v))
    np.testing.assert_allclose(jac[1].numpy(), np.diag(x))
    _, g = AF.vjp(lambda a: a.sin(), tx, tv)
    np.testing.assert_allclose(g.numpy(), np.cos(x) * v)
    _, t = AF.jvp(lambda a: a.sin(), tx, tv)
    np.testing.assert_allclose(t.numpy(), np.cos(x) * v)
    assert not g.requires_grad


def test_autograd_functional_against_torch():
    torch = pytest.importorskip("torch")
    from tinygrad_init.autograd import functional as AF

    x, v = _r(4), _r(4)

    def gt(x):
        return (x * x * x).sum() + (x[0] * x[1]).exp()

    tx, tv = torch.tensor(x), torch.tensor(v)
    TF = torch.autograd.functional
    ft = lambda x: (torch.tensor(W) @ x).tanh() * x[:3].sin()  # noqa: E731
    pairs = [
        (AF.hessian(f_scalar, tg.tensor(x)), TF.hessian(gt, tx)),
        (AF.hvp(f_scalar, tg.tensor(x), tg.tensor(v))[1], TF.hvp(gt, tx, tv)[1]),
        (AF.jacobian(f_vec, tg.tensor(x)), TF.jacobian(ft, tx)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-12)


def test_autograd_functional_errors():
    from tinygrad_init.autograd import functional as AF

    with pytest.raises(RuntimeError, match="v can only be None if the input"):
        AF.jvp(lambda a: a * 2, tg.zeros(3))
    with pytest.raises(ValueError, match='either "forward-mode" or "reverse-mode"'):
        AF.jacobian(f_vec, tg.zeros(4), strategy="sideways")
    with pytest.raises(NotImplementedError, match="only implemented for `vectorize=True`"):
        AF.jacobian(f_vec, tg.zeros(4), strategy="forward-mode")
    with pytest.raises(RuntimeError, match="should contain a single element"):
        AF.hessian(lambda a: a * 2, tg.zeros(3))
    with pytest.raises(TypeError, match="value at index 0 has type <class 'int'>"):
        AF.jacobian(f_vec, (3,))
    np.testing.assert_allclose(
        AF.jacobian(f_vec, tg.tensor(_r(4)), vectorize=True, strategy="forward-mode").shape, (3, 4)
    )


class _ScaledCube(tg.autograd.Function):
    """(x, w) -> (w x^3, sin x): two inputs, two outputs, a jvp and a backward."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return w * x**3, x.sin()

    @staticmethod
    def backward(ctx, g_cube, g_sin):
        x, w = ctx.saved_tensors
        return g_cube * 3 * w * x**2 + g_sin * x.cos(), (g_cube * x**3).sum(0)

    @staticmethod
    def jvp(ctx, t_x, t_w):
        x, w = ctx.saved_tensors
        return 3 * w * x**2 * t_x + t_w * x**3, x.cos() * t_x


def _cube_map(x, w):
    a, b = _ScaledCube.apply(x, w)
    return a * 2 + b


def test_custom_function_jvp_is_adjoint_of_backward_and_matches_finite_differences():
    x, w = _r(3, 4), _r(4)
    primals = (tg.tensor(x), tg.tensor(w))
    tx, tw = R.standard_normal(x.shape), R.standard_normal(w.shape)
    out, jv = func.jvp(_cube_map, primals, (tg.tensor(tx), tg.tensor(tw)))
    u = R.standard_normal(out.shape)
    _, vjp_fn = func.vjp(_cube_map, *primals)
    gx, gw = vjp_fn(tg.tensor(u))
    lhs = np.sum(u * jv.numpy())
    rhs = np.sum(gx.numpy() * tx) + np.sum(gw.numpy() * tw)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-12)
    eps = 1e-6
    plus = _cube_map(tg.tensor(x + eps * tx), tg.tensor(w + eps * tw)).numpy()
    minus = _cube_map(tg.tensor(x - eps * tx), tg.tensor(w - eps * tw)).numpy()
    np.testing.assert_allclose(jv.numpy(), (plus - minus) / (2 * eps), atol=1e-7)
    # Recorded tangents too: jacrev over jacfwd runs the jvp on Tensors and differentiates it.
    h_fwd = func.jacrev(func.jacfwd(lambda x: _cube_map(x, primals[1]).sum()))(primals[0])
    h_rev = func.hessian(lambda x: _cube_map(x, primals[1]).sum())(primals[0])
    np.testing.assert_allclose(h_fwd.numpy(), h_rev.numpy(), atol=1e-12)


def test_custom_function_without_jvp_names_the_function():
    class NoTangent(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = tg.tensor(_r(3))
    with pytest.raises(
        NotImplementedError,
        match="NoTangent: You must implement the jvp function for custom autograd.Function",
    ):
        func.jvp(NoTangent.apply, (x,), (tg.ones_like(x),))
