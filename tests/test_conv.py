"""conv2d, max_pool2d and avg_pool2d: values against loop-based numpy references,
gradients against central finite differences (hypothesis draws the geometry), errors,
and an optional comparison with PyTorch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_init as tg
from tinygrad_init import func
from tinygrad_init import functional as F
from tinygrad_init.gradcheck import gradcheck

# ----------------------------------------------------------------------------------------
# loop references (straight from the definitions, one output element at a time)


def pad_hw(x, top, bottom, left, right, value=0.0):
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value)
    out[:, :, top : top + h, left : left + w] = x
    return out


def conv2d_ref(x, w, b, stride, pads, dilation, groups):
    xp = pad_hw(x, *pads)
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            g = oi // og
            for hi in range(oh):
                for wi in range(ow):
                    acc = 0.0 if b is None else b[oi]
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                acc += (
                                    w[oi, ci, i, j]
                                    * xp[ni, g * cg + ci, hi * sh + i * dh, wi * sw + j * dw]
                                )
                    out[ni, oi, hi, wi] = acc
    return out


def pool_ref(x, kernel, stride, pads, dilation, reduce, fill):
    xp = pad_hw(x, *pads, value=fill)
    n, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for ni in range(n):
        for ci in range(c):
            for hi in range(oh):
                for wi in range(ow):
                    window = [
                        xp[ni, ci, hi * sh + i * dh, wi * sw + j * dw]
                        for i in range(kh)
                        for j in range(kw)
                    ]
                    out[ni, ci, hi, wi] = reduce(window, hi, wi)
    return out


def t64(a, grad=True):
    return tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ----------------------------------------------------------------------------------------
# conv2d


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 6))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 6))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(
        n=n,
        c=cg * groups,
        o=og * groups,
        groups=groups,
        size=(h, w),
        kernel=(kh, kw),
        stride=(sh, sw),
        dilation=(dh, dw),
        padding=(ph, pw),
        bias=bias,
        seed=seed,
    )


def make_conv(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    w = rng.standard_normal((case["o"], case["c"] // case["groups"]) + case["kernel"])
    b = rng.standard_normal(case["o"]) if case["bias"] else None
    return x, w, b


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv2d_matches_loop_reference(case):
    x, w, b = make_conv(case)
    ph, pw = case["padding"]
    out = F.conv2d(
        t64(x, False),
        t64(w, False),
        None if b is None else t64(b, False),
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
    )
    ref = conv2d_ref(x, w, b, case["stride"], (ph, ph, pw, pw), case["dilation"], case["groups"])
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(conv_cases())
def test_conv2d_gradients_match_finite_differences(case):
    x, w, b = make_conv(case)
    inputs = (t64(x), t64(w)) + (() if b is None else (t64(b),))

    def fn(x, w, b=None):
        return F.conv2d(
            x,
            w,
            b,
            stride=case["stride"],
            padding=case["padding"],
            dilation=case["dilation"],
            groups=case["groups"],
        )

    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("kernel,dilation", [((3, 3), (1, 1)), ((2, 4), (1, 1)), ((3, 2), (2, 3))])
def test_conv2d_same_padding_keeps_size_and_puts_odd_extra_bottom_right(kernel, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((4, 3) + kernel)
    out = F.conv2d(t64(x, False), t64(w, False), padding="same", dilation=dilation)
    assert out.shape == (2, 4, 5, 6)
    th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
    pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    np.testing.assert_allclose(
        out.detach().numpy(),
        conv2d_ref(x, w, None, (1, 1), pads, dilation, 1),
        rtol=1e-12,
        atol=1e-12,
    )
    assert gradcheck(
        lambda x, w: F.conv2d(x, w, padding="same", dilation=dilation),
        (t64(x[:1, :, :4, :4]), t64(w)),
    )


def test_conv2d_valid_padding_is_zero_padding():
    rng = np.random.default_rng(1)
    x, w = t64(rng.standard_normal((1, 2, 5, 5)), False), t64(rng.standard_normal((3, 2, 3, 3)))
    np.testing.assert_array_equal(
        F.conv2d(x, w, padding="valid").detach().numpy(), F.conv2d(x, w).detach().numpy()
    )


def test_conv2d_unbatched_input_and_float32():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    xt, wt = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    out = F.conv2d(xt, wt, padding=1)
    assert out.shape == (5, 6, 6) and out.dtype == np.float32
    out.sum().backward()
    assert xt.grad.dtype == np.float32 and wt.grad.dtype == np.float32
    ref = conv2d_ref(
        x[None].astype(np.float64), w.astype(np.float64), None, (1, 1), (1, 1, 1, 1), (1, 1), 1
    )[0]
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_conv2d_weight_gradient_of_sum_is_window_sums():
    # d(sum out)/dw[o, c, i, j] = sum over outputs of the input element under tap (i, j)
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    w = t64(np.zeros((1, 1, 2, 2)))
    F.conv2d(t64(x, False), w).sum().backward()
    expected = [[x[:, 0, i : i + 3, j : j + 3].sum() for j in range(2)] for i in range(2)]
    np.testing.assert_allclose(w.grad.detach().numpy()[0, 0], expected)


def test_conv2d_double_backward_is_refused_clearly():
    x, w = t64(np.ones((1, 1, 3, 3))), t64(np.ones((1, 1, 2, 2)))
    (gx,) = tg.grad(F.conv2d(x, w).sum(), [w], create_graph=False)
    assert gx.shape == (1, 1, 2, 2)
    with pytest.raises(NotImplementedError, match="double backward of conv2d"):
        tg.grad(F.conv2d(x, w).sum(), [w], create_graph=True)


@pytest.mark.parametrize(
    "kwargs,x_shape,w_shape,match",
    [
        (
            {},
            (2, 4, 8, 8),
            (8, 3, 3, 3),
            r"conv2d: expected input with 3 channels \(weight \(8, 3, 3, 3\)\), got input of shape "
            r"\(2, 4, 8, 8\)",
        ),
        (
            {"groups": 2},
            (2, 4, 8, 8),
            (8, 3, 3, 3),
            r"conv2d: expected input with 6 channels \(weight \(8, 3, 3, 3\), groups=2\)",
        ),
        (
            {"groups": 3},
            (2, 6, 8, 8),
            (8, 2, 3, 3),
            r"conv2d: out_channels \(8.*divisible by "
            r"groups \(3\)",
        ),
        ({}, (3, 8), (8, 3, 3, 3), r"conv2d: expected a 3-D \(C, H, W\) or 4-D"),
        ({}, (2, 3, 8, 8), (8, 3, 3), r"conv2d: weight must be 4-D"),
        (
            {},
            (1, 3, 2, 8),
            (8, 3, 3, 3),
            r"conv2d: input of shape \(1, 3, 2, 8\) with padding "
            r"\(0, 0\) is too small for kernel \(3, 3\)",
        ),
        (
            {"padding": "full"},
            (1, 3, 8, 8),
            (8, 3, 3, 3),
            r"conv2d: padding must be an int, a "
            r"pair, 'valid' or 'same', got 'full'",
        ),
        (
            {"padding": "same", "stride": 2},
            (1, 3, 8, 8),
            (8, 3, 3, 3),
            r"conv2d: padding='same' is not supported for strided convolutions",
        ),
        ({"stride": 0}, (1, 3, 8, 8), (8, 3, 3, 3), r"conv2d: stride must be >= 1, got 0"),
        ({"padding": -1}, (1, 3, 8, 8), (8, 3, 3, 3), r"conv2d: padding must be >= 0"),
        ({"groups": 0}, (1, 3, 8, 8), (8, 3, 3, 3), r"conv2d: groups must be a positive int"),
    ],
)
def test_conv2d_errors_name_the_shapes(kwargs, x_shape, w_shape, match):
    with pytest.raises(ValueError, match=match):
        F.conv2d(tg.zeros(*x_shape), tg.zeros(*w_shape), **kwargs)


def test_conv2d_bias_and_pair_type_errors():
    with pytest.raises(ValueError, match=r"conv2d: expected bias of shape \(8,\), got \(3,\)"):
        F.conv2d(tg.zeros(1, 3, 5, 5), tg.zeros(8, 3, 3, 3), tg.zeros(3))
    with pytest.raises(
        TypeError,
        match=r"conv2d: stride must be an int or a pair of ints, "
        r"got \(1, 2, 3\)",
    ):
        F.conv2d(tg.zeros(1, 3, 5, 5), tg.zeros(8, 3, 3, 3), stride=(1, 2, 3))


# ----------------------------------------------------------------------------------------
# pooling


@st.composite
def pool_cases(draw, dilation=True):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 6))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 6))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(
        kernel=(kh, kw), stride=stride, padding=(ph, pw), dilation=(dh, dw), shape=shape, seed=seed
    )


def _pool_geometry(case):
    ph, pw = case["padding"]
    stride = case["stride"] or case["kernel"]
    return case["kernel"], stride, (ph, ph, pw, pw), case["dilation"]


@settings(max_examples=40, deadline=None)
@given(pool_cases())
def test_max_pool2d_matches_reference_and_finite_differences(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    kernel, stride, pads, dilation = _pool_geometry(case)
    kwargs = dict(
        kernel_size=case["kernel"],
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
    )
    out = F.max_pool2d(t64(x, False), **kwargs)
    ref = pool_ref(x, kernel, stride, pads, dilation, lambda v, h, w: max(v), -np.inf)
    np.testing.assert_array_equal(out.detach().numpy(), ref)
    if np.isfinite(ref).all():  # a window lying wholly in the padding gives -inf
        assert gradcheck(lambda t: F.max_pool2d(t, **kwargs), (t64(x),))


@settings(max_examples=40, deadline=None)
@given(pool_cases(dilation=False), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d_matches_reference_and_finite_differences(case, include_pad, divisor):
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    kernel, stride, pads, _ = _pool_geometry(case)
    kwargs = dict(
        kernel_size=case["kernel"],
        stride=case["stride"],
        padding=case["padding"],
        count_include_pad=include_pad,
        divisor_override=divisor,
    )
    out = F.avg_pool2d(t64(x, False), **kwargs)
    real = pad_hw(np.ones((1, 1) + case["shape"][2:]), *pads)[0, 0]

    def average(v, h, w):
        if divisor is not None:
            return sum(v) / divisor
        if include_pad:
            return sum(v) / len(v)
        count = real[
            h * stride[0] : h * stride[0] + kernel[0], w * stride[1] : w * stride[1] + kernel[1]
        ].sum()
        return sum(v) / count

    ref = pool_ref(x, kernel, stride, pads, (1, 1), average, 0.0)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: F.avg_pool2d(t, **kwargs), (t64(x),))


def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum():
    x = t64(
        np.array(
            [
                [
                    [
                        [1.0, 3.0, 3.0, 0.0],
                        [3.0, 2.0, 0.0, 0.0],
                        [5.0, 5.0, 7.0, 7.0],
                        [5.0, 5.0, 7.0, 7.0],
                    ]
                ]
            ]
        )
    )
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.detach().numpy()[0, 0], [[3, 3], [5, 7]])
    np.testing.assert_array_equal(idx.detach().numpy()[0, 0], [[1, 2], [8, 10]])
    out.sum().backward()
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1
    np.testing.assert_array_equal(x.grad.detach().numpy()[0, 0], expected)


def test_max_pool2d_overlapping_windows_accumulate_gradient():
    x = t64(np.array([[[[0.0, 9.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]))
    F.max_pool2d(x, 2, stride=1).sum().backward()
    # the 9 is the max of both top windows
    assert x.grad.detach().numpy()[0, 0, 0, 1] == 2
    assert x.grad.detach().numpy().sum() == 4


def test_max_pool2d_indices_skip_padding():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    _, idx = F.max_pool2d(t64(x, False), 3, stride=2, padding=1, return_indices=True)
    # window maxima are bottom-right elements: flat index into the unpadded 4x4 plane
    np.testing.assert_array_equal(idx.detach().numpy()[0, 0], [[5, 7], [13, 15]])


def test_avg_pool2d_gradient_of_sum_counts_window_membership():
    x = t64(np.zeros((1, 1, 3, 3)))
    F.avg_pool2d(x, 2, stride=1).sum().backward()
    np.testing.assert_allclose(
        x.grad.detach().numpy()[0, 0], np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    )


def test_pool_errors():
    x = tg.zeros(1, 1, 4, 4)
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: padding \(2, 2\) should be at most "
        r"half of kernel size \(3, 3\)",
    ):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(NotImplementedError, match="avg_pool2d: ceil_mode=True is not supported"):
        F.avg_pool2d(x, 3, ceil_mode=True)
    with pytest.raises(NotImplementedError, match="max_pool2d: ceil_mode=True"):
        F.max_pool2d(x, 3, ceil_mode=True)
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: input of shape \(1, 1, 4, 4\) with "
        r"padding \(0, 0\) is too small for kernel \(5, 5\)",
    ):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected a 3-D \(C, H, W\) or 4-D"):
        F.avg_pool2d(tg.zeros(4, 4), 2)
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a positive"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="max_pool2d: kernel_size must be >= 1"):
        F.max_pool2d(x, 0)


def test_pool_double_backward_is_refused_clearly():
    x = t64(np.random.default_rng(0).standard_normal((1, 1, 4, 4)))
    for fn, name in ((F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")):
        with pytest.raises(NotImplementedError, match=f"double backward of {name}"):
            tg.grad(fn(x, 2).sum(), [x], create_graph=True)


def test_small_cnn_trains_end_to_end_in_float32():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((8, 1, 12, 12)).astype(np.float32))
    y = rng.integers(0, 3, 8)
    w1 = tg.tensor(rng.standard_normal((4, 1, 3, 3)).astype(np.float32) * 0.3, requires_grad=True)
    w2 = tg.tensor(rng.standard_normal((3, 4 * 5 * 5)).astype(np.float32) * 0.1, requires_grad=True)
    losses = []
    for _ in range(30):
        h = F.max_pool2d(F.relu(F.conv2d(x, w1)), 2)
        loss = F.cross_entropy(F.linear(h.flatten(1), w2), y)
        w1.grad = w2.grad = None
        loss.backward()
        for p in (w1, w2):
            p.data -= 0.2 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------------------
# optional comparison with PyTorch


def _torch_pair(a):
    torch = pytest.importorskip("torch")
    return tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(stride=2, padding=1),
        dict(dilation=2, padding=(2, 1)),
        dict(groups=2, stride=(1, 2)),
        dict(padding="same", dilation=(1, 2)),
    ],
)
def test_conv2d_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, tx = _torch_pair(rng.standard_normal((2, 4, 7, 8)))
    w, tw = _torch_pair(rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 3)))
    b, tb = _torch_pair(rng.standard_normal(6))
    g = rng.standard_normal(F.conv2d(x, w, b, **kwargs).shape)
    out = F.conv2d(x, w, b, **kwargs)
    tout = torch.nn.functional.conv2d(tx, tw, tb, **kwargs)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    out.backward(tg.tensor(g))
    tout.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(
            ours.grad.detach().numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-10
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), stride=1, dilation=(2, 1)),
    ],
)
def test_max_pool2d_matches_torch_with_ties(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, (2, 3, 7, 7)).astype(np.float64)  # many ties
    x, tx = _torch_pair(a)
    out, idx = F.max_pool2d(x, return_indices=True, **kwargs)
    tout, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kwargs)
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(idx.detach().numpy(), tidx.numpy())
    g = rng.standard_normal(out.shape)
    out.backward(tg.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_max_pool2d_nan_window_picks_its_last_nan_and_padding_is_never_picked():
    nan, inf = np.nan, np.inf
    a = np.array([[[[nan, 1, 1, nan], [2, nan, 0, 3], [5, 5, 7, -inf], [5, nan, -inf, 7]]]])
    x = t64(a)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.detach().numpy()[0, 0], [[nan, nan], [nan, 7]])
    # last NaN of each NaN window (offsets 3, 1, 3), first maximum of the NaN-free one
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[5, 3], [13, 10]])
    out.sum().backward()
    expected = np.zeros(16)
    expected[[5, 3, 13, 10]] = 1
    np.testing.assert_array_equal(x.grad.numpy()[0, 0].ravel(), expected)
    # a window whose real elements are all -inf picks its first real element, not padding
    x = t64(np.full((1, 1, 3, 3), -inf))
    out, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[0, 1], [3, 4]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=1, padding=1),
        dict(kernel_size=(2, 3), stride=1, dilation=(2, 1)),
        dict(kernel_size=2, stride=(1, 2), padding=1, dilation=2),
        dict(kernel_size=1),
    ],
)
def test_max_pool2d_matches_torch_with_nan_and_inf(kwargs):
    """Values, indices, gradient and tangent on ties, NaN and -inf (a plane of -inf too)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    a = rng.integers(0, 3, (2, 3, 7, 7)).astype(np.float64)
    a[rng.random(a.shape) < 0.15] = np.nan
    a[rng.random(a.shape) < 0.3] = -np.inf
    a[1, 2] = -np.inf
    x, tx = _torch_pair(a)
    out, idx = F.max_pool2d(x, return_indices=True, **kwargs)
    tout, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kwargs)
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    g = rng.standard_normal(out.shape)
    out.backward(tg.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    t = rng.standard_normal(a.shape)
    _, tangent = func.jvp(lambda v: F.max_pool2d(v, **kwargs), (tg.tensor(a),), (tg.tensor(t),))
    _, ttangent = torch.func.jvp(
        lambda v: torch.nn.functional.max_pool2d(v, **kwargs),
        (torch.tensor(a),),
        (torch.tensor(t),),
    )
    np.testing.assert_array_equal(tangent.numpy(), ttangent.numpy())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
        dict(kernel_size=3, padding=1, divisor_override=2),
    ],
)
def test_avg_pool2d_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, tx = _torch_pair(rng.standard_normal((2, 3, 7, 6)))
    out = F.avg_pool2d(x, **kwargs)
    tout = torch.nn.functional.avg_pool2d(tx, **kwargs)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(tg.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------
# reused scratch buffers never leak into results


def _layer_results(layer, seed, **kwargs):
    """Output and input/weight gradients of one call, as the arrays the user holds."""
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal((3, 4, 9, 9), dtype=np.float32), requires_grad=True)
    cin = 4 // kwargs.get("groups", 1)
    w = tg.tensor(rng.standard_normal((6, cin, 3, 3), dtype=np.float32), requires_grad=True)
    out = F.conv2d(x, w, **kwargs) if layer == "conv2d" else getattr(F, layer)(x, 3, 2)
    out.backward(tg.tensor(rng.standard_normal(out.shape, dtype=np.float32)))
    held = {"out": out.detach().numpy(), "x.grad": x.grad.numpy()}
    if layer == "conv2d":
        held["w.grad"] = w.grad.numpy()
    return held


@pytest.mark.parametrize(
    "layer, kwargs",
    [
        ("conv2d", {}),
        ("conv2d", {"padding": 1, "stride": 2}),
        ("conv2d", {"groups": 2}),
        ("max_pool2d", {}),
        ("avg_pool2d", {}),
    ],
)
def test_outputs_and_gradients_do_not_alias_scratch_buffers(layer, kwargs):
    first = _layer_results(layer, 0, **kwargs)
    snapshot = {k: v.copy() for k, v in first.items()}
    _layer_results(layer, 1, **kwargs)  # same shapes, other values: reuses every buffer
    for name, array in first.items():
        np.testing.assert_array_equal(array, snapshot[name], err_msg=name)


def test_backward_twice_through_a_retained_conv_graph_gives_the_same_gradients():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3, 8, 8), dtype=np.float32), requires_grad=True)
    w = tg.tensor(rng.standard_normal((5, 3, 3, 3), dtype=np.float32), requires_grad=True)
    loss = F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy(), w.grad.numpy().copy()
    held = x.grad.numpy()
    x.grad = w.grad = None
    _layer_results("conv2d", 1)  # an unrelated conv call in between
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), first[0])
    np.testing.assert_array_equal(w.grad.numpy(), first[1])
    np.testing.assert_array_equal(held, first[0])
