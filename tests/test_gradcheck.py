"""Tests for tinygrad_init.gradcheck and tinygrad_init.testing.

Mutation tests: deliberately wrong ``Function``s (sign flip, missing broadcast reduction,
wrong transpose, one element off by a factor 2, a backward that detaches) must be caught by
gradcheck, fast mode, gradgradcheck (where the bug is in the second derivative) and
gradcheck_graph, which must name the wrong node.  Correct functions must pass, and the
reports must carry the facts a person needs (indices, values, site).
"""

import re
import warnings

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import ops
from tinygrad_init.autograd import Function
from tinygrad_init.gradcheck import (
    GradcheckError,
    GraphCheckReport,
    gradcheck,
    gradcheck_graph,
    gradgradcheck,
)
from tinygrad_init.tensor import apply
from tinygrad_init.testing import assert_gradients_close

THIS_FILE = __file__


def rand(*shape, seed=0, requires_grad=True, dtype=np.float64):
    data = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return tg.tensor(data, requires_grad=requires_grad)


# ----------------------------------------------------------------------------------------
# Deliberately wrong (and right) custom Functions


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SignFlipSquare(Function):
    """d(x^2)/dx with the wrong sign."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -2 * x * g


class AddBias(Function):
    @staticmethod
    def forward(ctx, x, b):
        return x + b

    @staticmethod
    def backward(ctx, g):
        return g, g.sum(0)


class MissingReductionAddBias(Function):
    """x (N, M) + b (M,): the bias gradient takes the first row instead of summing rows."""

    @staticmethod
    def forward(ctx, x, b):
        return x + b

    @staticmethod
    def backward(ctx, g):
        return g, g[0]


class WrongTransposeMatmul(Function):
    """a @ b with grad_a = g @ b (should be g @ b^T); square b keeps the shapes valid."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g @ b, a.T @ g


class OffByTwoSin(Function):
    """sin with the gradient of element 0 (flat) doubled."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        scale = np.ones(x.shape)
        scale.reshape(-1)[OffByTwoSin.element] = 2.0
        return g * x.cos() * tg.tensor(scale)


OffByTwoSin.element = 0


class DetachedCube(Function):
    """x^3 whose backward computes on raw arrays: right first derivative, no second one."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.tensor(3 * x.detach().numpy() ** 2)


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


# (name, fn, inputs factory, index of the input whose gradient is wrong)
MUTANTS = [
    ("sign flip", lambda x: SignFlipSquare.apply(x), lambda: (rand(3, 4),), 0),
    (
        "missing broadcast reduction",
        lambda x, b: MissingReductionAddBias.apply(x, b),
        lambda: (rand(4, 3), rand(3, seed=1)),
        1,
    ),
    (
        "wrong transpose",
        lambda a, b: WrongTransposeMatmul.apply(a, b),
        lambda: (rand(2, 3), rand(3, 3, seed=1)),
        0,
    ),
    ("off by 2 in one element", lambda x: OffByTwoSin.apply(x), lambda: (rand(3, 4),), 0),
]
CORRECT = [
    ("square", lambda x: Square.apply(x), lambda: (rand(3, 4),)),
    ("add bias", lambda x, b: AddBias.apply(x, b), lambda: (rand(4, 3), rand(3, seed=1))),
    ("cube", lambda x: Cube.apply(x), lambda: (rand(5),)),
    ("tanh matmul", lambda a, b: (a @ b).tanh(), lambda: (rand(2, 3), rand(3, 4, seed=1))),
    ("two outputs", lambda a, b: (a * b, (a - b).exp().sum()), lambda: (rand(3), rand(3, seed=1))),
]


# ----------------------------------------------------------------------------------------
# gradcheck, full and fast mode


@pytest.mark.parametrize("name,fn,make,wrong", MUTANTS, ids=[m[0] for m in MUTANTS])
@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradcheck_catches_wrong_function(name, fn, make, wrong, fast):
    inputs = make()
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, inputs, fast_mode=fast)
    assert info.value.output_index == 0
    assert info.value.input_index == wrong
    assert f"output 0 with respect to input {wrong}" in str(info.value)
    assert gradcheck(fn, make(), fast_mode=fast, raise_exception=False) is False


@pytest.mark.parametrize("name,fn,make", CORRECT, ids=[c[0] for c in CORRECT])
@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradcheck_passes_correct_function(name, fn, make, fast):
    assert gradcheck(fn, make(), fast_mode=fast) is True


def test_report_names_entries_with_both_values():
    x = tg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: SignFlipSquare.apply(x), x)
    err = info.value
    text = str(err)
    # every diagonal entry is wrong: analytic -2x against numerical 2x
    assert len(err.mismatches) == 3
    worst = err.mismatches[0]
    assert worst.output_position == (2,) and worst.input_position == (2,)
    assert worst.analytic == pytest.approx(-4.0)
    assert worst.numerical == pytest.approx(4.0, rel=1e-6)
    assert worst.abs_error == pytest.approx(8.0, rel=1e-6)
    assert worst.rel_error == pytest.approx(2.0, rel=1e-6)
    assert worst.tolerance == pytest.approx(1e-5 + 1e-3 * 4.0, rel=1e-6)
    assert "out[2] / in[2]" in text
    assert "3 of 9 entries fail" in text
    # small Jacobians are shown whole
    assert "analytic Jacobian" in text and "numerical Jacobian" in text
    np.testing.assert_allclose(err.analytic, np.diag([-1.0, 2.0, -4.0]))
    np.testing.assert_allclose(err.numerical, np.diag([1.0, -2.0, 4.0]), rtol=1e-6)


def test_report_for_one_wrong_element_points_at_it():
    OffByTwoSin.element = 7
    try:
        x = rand(3, 4)
        with pytest.raises(GradcheckError) as info:
            gradcheck(lambda x: OffByTwoSin.apply(x), x)
    finally:
        OffByTwoSin.element = 0
    (m,) = info.value.mismatches
    assert m.output_position == (1, 3) and m.input_position == (1, 3)
    assert m.analytic == pytest.approx(2 * m.numerical, rel=1e-6)
    assert m.numerical == pytest.approx(np.cos(x.detach().numpy()[1, 3]), rel=1e-6)
    assert "1 of 144 entries fail" in str(info.value)


def test_large_jacobian_lists_worst_entries_not_matrices():
    x = rand(30)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: SignFlipSquare.apply(x), x)
    text = str(info.value)
    assert "analytic Jacobian" not in text
    assert "worst entries (of 30)" in text
    rows = [line for line in text.splitlines() if re.match(r"\s+out\[\d+\] / in\[\d+\]", line)]
    assert len(rows) == 8
    # worst first: the largest |x| has the largest error 4|x|
    k = int(np.argmax(np.abs(x.detach().numpy())))
    assert rows[0].split()[0] == f"out[{k}]"
    assert len(text) < 3000


def test_second_pair_reported_with_its_indices():
    # output 1 depends wrongly on input 1 only
    def fn(a, b):
        return a.exp(), a * SignFlipSquare.apply(b)

    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, (rand(2), rand(2, seed=1)))
    assert (info.value.output_index, info.value.input_index) == (1, 1)
    assert "output 1 with respect to input 1" in str(info.value)


def test_float32_inputs_warn_about_precision():
    x = rand(3, dtype=np.float32)
    with pytest.warns(UserWarning, match=r"input 0 .* float32.*single precision"):
        gradcheck(lambda x: x * 2, x, atol=1e-2, rtol=1e-2)


def test_eps_below_float32_resolution_is_explained():
    x = tg.tensor(np.array([1000.0, 1.0], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="single precision"):
        with pytest.raises(
            GradcheckError,
            match=r"eps=1e-06 is below the resolution of "
            r"input 0 \(float32\) at index \[0\]",
        ):
            gradcheck(lambda x: x * 2, x)


def test_identity_and_passthrough_outputs():
    x = rand(3)
    assert gradcheck(lambda x: x, x)
    assert gradcheck(lambda x, y: (x, y * 2), (x, rand(2, seed=1)))


def test_float64_inputs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(lambda x: x.tanh(), rand(3))


def test_kink_is_explained_not_crashed():
    x = tg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: x.relu(), x)
    text = str(info.value)
    assert "not differentiable" in text
    assert "input 0[0]" in text
    assert info.value.mismatches[0].kink
    assert info.value.mismatches[0].numerical == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_undefined_point_reports_non_finite_derivative():
    x = tg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match="numerical derivative is not finite"):
        gradcheck(lambda x: x.log(), x)
    with pytest.raises(GradcheckError, match="not finite"):
        gradcheck(lambda x: x.sqrt(), x, fast_mode=True)


def test_integer_and_plain_inputs_pass_through_untouched():
    x = rand(4)
    idx = tg.tensor(np.array([3, 0, 3]))
    before = idx.detach().numpy().copy()
    assert gradcheck(lambda x, i, s, k: x[i] * s + k, (x, idx, 2.5, 3))
    np.testing.assert_array_equal(idx.detach().numpy(), before)
    with pytest.raises(TypeError, match="floating point"):
        tg.tensor([1, 2], requires_grad=True)


def test_inputs_restored_exactly():
    x = rand(3, 2)
    data = x.detach().numpy()
    snapshot = data.copy()
    gradcheck(lambda x: (x * 3).sin(), x)
    gradcheck(lambda x: (x * 3).sin(), x, fast_mode=True)
    assert x.detach().numpy() is data
    np.testing.assert_array_equal(x.detach().numpy(), snapshot)


def test_read_only_input_data_is_supported():
    base = np.random.default_rng(0).standard_normal(4)
    base.flags.writeable = False
    x = tg.Tensor._make(base)
    x.requires_grad_()
    assert gradcheck(lambda x: x.exp(), x)
    assert x.detach().numpy() is base


def test_no_input_requires_grad_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda x: x * 2, rand(3, requires_grad=False))


def test_fn_without_tensor_output_is_a_clear_error():
    with pytest.raises(TypeError, match="floating-point Tensor"):
        gradcheck(lambda x: 3.0, rand(3))


def test_output_independent_of_input_has_zero_jacobian():
    # output 1 does not depend on any input: its Jacobian is zero, and that is correct
    assert gradcheck(lambda x: (x * 2, tg.tensor(np.ones(2))), rand(3))


class NoisyBackward(Function):
    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        NoisyBackward.calls += 1
        return g * (2 + 1e-9 * NoisyBackward.calls)


def test_nondeterministic_backward_is_reported():
    with pytest.raises(GradcheckError, match=r"not reentrant.*nondet_tol=0"):
        gradcheck(lambda x: NoisyBackward.apply(x), rand(3))
    with pytest.raises(GradcheckError, match="not reentrant"):
        gradcheck(lambda x: NoisyBackward.apply(x), rand(3), fast_mode=True)
    assert gradcheck(lambda x: NoisyBackward.apply(x), rand(3), nondet_tol=1e-6)


# ----------------------------------------------------------------------------------------
# fast mode: cost and power


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def mlp(x, w1, b1, w2):
    return ((x @ w1 + b1).tanh() @ w2).sum()


@pytest.mark.parametrize("hidden", [2, 50, 400])
def test_fast_mode_forward_count_is_independent_of_parameter_count(hidden):
    inputs = (rand(4, 8), rand(8, hidden, seed=1), rand(hidden, seed=2), rand(hidden, 3, seed=3))
    counter = Counter(mlp)
    gradcheck(counter, inputs, fast_mode=True)
    assert counter.calls == 5  # one base forward, then f(x +/- eps v) for two probes


def test_full_mode_forward_count_is_one_plus_two_per_element():
    inputs = (rand(2, 3), rand(3, 4, seed=1), rand(4, seed=2), rand(4, 2, seed=3))
    counter = Counter(mlp)
    gradcheck(counter, inputs)
    n = sum(t.detach().numpy().size for t in inputs)
    assert counter.calls == 1 + 2 * n


@pytest.mark.parametrize("element", [0, 17, 99, 150, 199])
def test_fast_mode_catches_one_wrong_element_in_a_large_input(element):
    OffByTwoSin.element = element
    try:
        assert not gradcheck(
            lambda x: OffByTwoSin.apply(x), rand(10, 20), fast_mode=True, raise_exception=False
        )
    finally:
        OffByTwoSin.element = 0


def test_fast_mode_report_names_pair_and_values():
    def fn(a, b):
        return a.exp(), SignFlipSquare.apply(b)

    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, (rand(3), rand(4, seed=1)), fast_mode=True)
    err = info.value
    assert (err.output_index, err.input_index) == (1, 1)
    assert err.analytic == pytest.approx(-err.numerical, rel=1e-6)
    assert "fast mode" in str(err) and "fast_mode=False" in str(err)


def test_fast_mode_kink_message():
    x = tg.tensor(np.array([0.0, 0.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match="not differentiable at this point"):
        gradcheck(lambda x: x.relu(), x, fast_mode=True)


# ----------------------------------------------------------------------------------------
# gradgradcheck


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradgradcheck_passes_correct_second_derivatives(fast):
    assert gradgradcheck(
        lambda a, b: (a @ b).tanh(), (rand(2, 3), rand(3, 2, seed=1)), fast_mode=fast
    )
    assert gradgradcheck(lambda x: Cube.apply(x), rand(4), fast_mode=fast)
    assert gradgradcheck(lambda x: x.sigmoid() * x, rand(2, 2), fast_mode=fast)


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradgradcheck_catches_detached_backward(fast):
    x = rand(4)
    assert gradcheck(lambda x: DetachedCube.apply(x), x)  # first derivative is right
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda x: DetachedCube.apply(x), x, fast_mode=fast)
    assert info.value.input_index == 0  # d(grad)/dx is wrong; d(grad)/dv is right


def test_gradgradcheck_catches_wrong_second_derivative_rule():
    class BadSquareGrad(Function):
        """2x, with a backward of -2 (the second derivative of x^2 with the sign flipped)."""

        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return -2 * g

    class SquareWithBadGrad(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * BadSquareGrad.apply(x)

    x = rand(3)
    assert gradcheck(lambda x: SquareWithBadGrad.apply(x), x)
    assert not gradgradcheck(lambda x: SquareWithBadGrad.apply(x), x, raise_exception=False)


def test_gradgradcheck_with_given_grad_outputs():
    v = tg.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    assert gradgradcheck(lambda x: x.exp() * x, rand(3), v)
    with pytest.raises(ValueError, match="got 2 grad_outputs for 1"):
        gradgradcheck(lambda x: x.exp(), rand(3), (v, v))


# ----------------------------------------------------------------------------------------
# gradcheck_graph


def linear(x, w, b):
    return x @ w.T + b


# (name, wrong layer applied to h of shape (4, 3), extra parameters, wrong input)
GRAPH_MUTANTS = [
    ("sign flip", SignFlipSquare.apply, lambda: [], 0),
    (
        "missing broadcast reduction",
        MissingReductionAddBias.apply,
        lambda: [rand(3, seed=7, dtype=np.float32)],
        1,
    ),
    (
        "wrong transpose",
        WrongTransposeMatmul.apply,
        lambda: [rand(3, 3, seed=7, dtype=np.float32)],
        0,
    ),
    ("off by 2 in one element", OffByTwoSin.apply, lambda: [], 0),
]


@pytest.mark.parametrize(
    "name,wrong_layer,make,wrong", GRAPH_MUTANTS, ids=[m[0] for m in GRAPH_MUTANTS]
)
def test_gradcheck_graph_names_the_wrong_node(name, wrong_layer, make, wrong):
    # a float32 model: linear -> wrong Function -> tanh -> sum, all else plain tensor ops
    x = rand(4, 3, dtype=np.float32, requires_grad=False)
    w = rand(3, 3, seed=5, dtype=np.float32)
    b = rand(3, seed=6, dtype=np.float32)
    extra = make()
    with tg.autograd.detect_anomaly():
        h = linear(x, w, b)
        z = wrong_layer(h, *extra)
        loss = z.tanh().sum()
    line = _line_of("z = wrong_layer(h, *extra)")
    with pytest.raises(GradcheckError) as info:
        gradcheck_graph(loss)
    err = info.value
    node = err.node
    assert node.name == wrong_layer.__self__.__name__ + "Backward"
    assert node.node is z.grad_fn
    assert node.status == "failed"
    assert node.input_index == wrong
    assert node.site == f"{THIS_FILE}:{line}"
    text = str(err)
    assert f"'{node.op_name}' ({node.name})" in text
    assert f"created at: {THIS_FILE}:{line}" in text
    shapes = ", ".join(str(tuple(t.shape)) for t in [h, *extra])
    assert f"input shapes: {shapes}" in text
    # everything before the wrong node passed; the report lists all nodes in order
    report = err.report
    assert isinstance(report, GraphCheckReport)
    assert [r.position for r in report] == list(range(len(report)))
    assert [r.name for r in report[:3]] == ["PermuteBackward", "MatmulBackward", "AddBackward"]
    assert all(r.status == "ok" for r in report[: node.position])
    assert report.failures == [node]
    assert f"{node.position} node(s) before it passed" in text
    # the graph was not consumed: backward still works afterwards
    loss.backward()
    assert w.grad is not None


def _line_of(text):
    with open(THIS_FILE) as f:
        for k, line in enumerate(f, 1):
            if text in line:
                return k
    raise AssertionError(text)


def test_gradcheck_graph_passes_a_correct_model_and_lists_nodes():
    x = rand(5, 3, requires_grad=False, dtype=np.float32)
    w1, b1 = rand(4, 3, seed=1, dtype=np.float32), rand(4, seed=2, dtype=np.float32)
    w2 = rand(2, 4, seed=3, dtype=np.float32)
    h = linear(x, w1, b1).tanh()
    h = AddBias.apply(h, b1)
    logits = h @ w2.T
    loss = -(logits.log_softmax(1)[np.arange(5), np.array([0, 1, 0, 1, 1])]).mean()
    report = gradcheck_graph(loss)
    assert report.ok and report.failures == [] and report.first_failure is None
    names = [r.name for r in report]
    assert names[:4] == ["PermuteBackward", "MatmulBackward", "AddBackward", "TanhBackward"]
    assert "AddBiasBackward" in names and "LogsumexpBackward" in names
    assert all(r.status == "ok" for r in report)
    assert all(r.site is None for r in report)
    text = str(report)
    assert text.startswith(f"gradcheck_graph: {len(report)} nodes: {len(report)} ok")


def test_gradcheck_graph_without_anomaly_mode_says_how_to_get_sites():
    x = rand(3)
    loss = SignFlipSquare.apply(x.exp()).sum()
    with pytest.raises(GradcheckError) as info:
        gradcheck_graph(loss)
    assert "run under tg.autograd.detect_anomaly() to record creation sites" in str(info.value)
    assert info.value.node.position == 1


def test_gradcheck_graph_finds_broken_primitive_rule():
    bad_exp = ops.Primitive("bad_exp", np.exp, lambda xp, g, out, a: g * a)
    x = rand(2, 3)
    loss = (apply(bad_exp, x * 2) + 1).sum()
    report = gradcheck_graph(loss, raise_exception=False)
    assert not report.ok
    assert report.first_failure.op_name == "bad_exp"
    assert report.first_failure.name == "Bad_expBackward"
    assert [r.status for r in report] == ["ok", "failed", "ok", "ok"]


def test_gradcheck_graph_large_nodes_use_directional_probes():
    x = rand(40, 30, requires_grad=False)
    w = rand(30, 30, seed=1)
    OffByTwoSin.element = 123
    try:
        loss = OffByTwoSin.apply(x @ w).sum()
        with pytest.raises(GradcheckError) as info:
            gradcheck_graph(loss)
    finally:
        OffByTwoSin.element = 0
    report = info.value.report
    assert [r.mode for r in report] == ["directional"] * 3
    assert info.value.node.name == "OffByTwoSinBackward"
    assert "check: directional" in str(info.value)
    # forcing full mode on the small node checks every entry
    small = Square.apply(rand(2, 2)).sum()
    assert {r.mode for r in gradcheck_graph(small, fast_mode=False)} == {"full"}


def test_gradcheck_graph_kink_is_inconclusive_not_failed():
    x = tg.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    loss = (x.relu() * 3).sum()
    report = gradcheck_graph(loss)
    assert report.ok
    assert report[0].status == "inconclusive"
    assert "not differentiable" in report[0].detail


def test_gradcheck_graph_freed_graph_is_a_clear_error():
    x = rand(3)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by a previous backward.*retain_graph=True"):
        gradcheck_graph(loss)


def test_gradcheck_graph_without_graph_is_a_clear_error():
    with pytest.raises(ValueError, match="no recorded graph"):
        gradcheck_graph(rand(3, requires_grad=False))


def test_gradcheck_graph_handles_casts_and_multi_input_ops():
    a, b = rand(2, 3), rand(2, 3, seed=1)
    out = a * b.to(np.float32).to(np.float64)
    out = tg.where(out > 0, out, out * 0.1).max(1).values.sum() + (a @ b.T).sum()
    report = gradcheck_graph(out)
    assert report.ok
    assert {"ToBackward", "WhereBackward", "MaxBackward", "MatmulBackward"} <= {
        r.name for r in report
    }


def test_gradcheck_graph_handles_variadic_cat():
    a, b = rand(2, 3), rand(2, 3, seed=1)
    report = gradcheck_graph((tg.cat([a, b], 1) * 2).sum() + tg.stack([a, b]).sum())
    assert report.ok
    assert "CatBackward" in {r.name for r in report}


def test_gradcheck_graph_reports_a_rule_that_raises():
    class Raising(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            raise KeyError("saved value missing")

    report = gradcheck_graph(Raising.apply(rand(2)).sum(), raise_exception=False)
    assert report.first_failure.name == "RaisingBackward"
    assert "the gradient rule raised KeyError" in report.first_failure.detail


# ----------------------------------------------------------------------------------------
# testing.assert_gradients_close


def test_assert_gradients_close_passes_and_fails_readably():
    assert_gradients_close(lambda x: x.sin() * x, rand(3))
    assert_gradients_close(lambda x: x.sin() * x, rand(3), fast_mode=True)
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(lambda x: SignFlipSquare.apply(x), rand(3))
    assert "output 0 with respect to input 0" in str(info.value)
    assert not isinstance(info.value, GradcheckError)
