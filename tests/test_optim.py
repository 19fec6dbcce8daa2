"""Optimizers and LR schedules: each update rule against its formula worked by hand,
state dicts, parameter groups, validation, and (when torch is installed) PyTorch."""

import copy
import math

import numpy as np
import pytest

from tinygrad_init import optim
from tinygrad_init.optim import lr_scheduler
from tinygrad_init.tensor import Tensor

W0 = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
GRADS = [
    np.array([[0.1, -0.2], [0.3, 0.4]], dtype=np.float32),
    np.array([[-0.5, 0.05], [0.2, -0.1]], dtype=np.float32),
    np.array([[0.3, 0.3], [-0.4, 0.02]], dtype=np.float32),
]


def param(values=W0):
    return Tensor(np.array(values, dtype=np.float32), requires_grad=True)


def run(cls, grads=GRADS, **kwargs):
    """Weights after each step of ``cls`` fed the fixed gradients ``grads``."""
    p = param()
    opt = cls([p], **kwargs)
    out = []
    for g in grads:
        p.grad = Tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def g64(i):
    return GRADS[i].astype(np.float64)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------
# SGD, step by step


def test_sgd_plain_two_steps():
    w = W0.astype(np.float64)
    w1 = w - 0.1 * g64(0)
    w2 = w1 - 0.1 * g64(1)
    out = run(optim.SGD, lr=0.1)
    close(out[0], w1)
    close(out[1], w2)


def test_sgd_momentum_first_buffer_is_the_gradient_not_dampened():
    lr, mu, tau = 0.1, 0.9, 0.5
    w = W0.astype(np.float64)
    b1 = g64(0)  # first step: buffer = g, no dampening
    w1 = w - lr * b1
    b2 = mu * b1 + (1 - tau) * g64(1)
    w2 = w1 - lr * b2
    b3 = mu * b2 + (1 - tau) * g64(2)
    w3 = w2 - lr * b3
    out = run(optim.SGD, lr=lr, momentum=mu, dampening=tau)
    for got, want in zip(out, [w1, w2, w3]):
        close(got, want)


def test_sgd_nesterov():
    lr, mu = 0.1, 0.9
    w = W0.astype(np.float64)
    b1 = g64(0)
    w1 = w - lr * (g64(0) + mu * b1)
    b2 = mu * b1 + g64(1)
    w2 = w1 - lr * (g64(1) + mu * b2)
    b3 = mu * b2 + g64(2)
    w3 = w2 - lr * (g64(2) + mu * b3)
    out = run(optim.SGD, lr=lr, momentum=mu, nesterov=True)
    for got, want in zip(out, [w1, w2, w3]):
        close(got, want)


def test_sgd_weight_decay_with_momentum():
    lr, mu, wd = 0.1, 0.5, 0.2
    w = W0.astype(np.float64)
    d1 = g64(0) + wd * w
    b1 = d1
    w1 = w - lr * b1
    d2 = g64(1) + wd * w1
    b2 = mu * b1 + d2
    w2 = w1 - lr * b2
    out = run(optim.SGD, lr=lr, momentum=mu, weight_decay=wd)
    close(out[0], w1)
    close(out[1], w2)


def test_sgd_maximize_negates_the_gradient_before_weight_decay():
    lr, wd = 0.1, 0.2
    w = W0.astype(np.float64)
    w1 = w - lr * (-g64(0) + wd * w)
    w2 = w1 - lr * (-g64(1) + wd * w1)
    out = run(optim.SGD, lr=lr, weight_decay=wd, maximize=True)
    close(out[0], w1)
    close(out[1], w2)


def test_sgd_defaults_are_pytorchs():
    opt = optim.SGD([param()])
    assert opt.defaults == dict(
        lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-1), "Invalid learning rate: -1"),
        (dict(momentum=-0.5), "Invalid momentum value: -0.5"),
        (dict(weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
        (dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (
            dict(nesterov=True, momentum=0.9, dampening=0.1),
            "Nesterov momentum requires a momentum and zero dampening",
        ),
    ],
)
def test_sgd_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.SGD([param()], **kwargs)


# ----------------------------------------------------------------------------------------
# Adam / AdamW


def adam_by_hand(
    steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, amsgrad=False, decoupled=False
):
    """The Adam recurrence written out, in float64, for the fixed gradients."""
    w = W0.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vmax = np.zeros_like(w)
    out = []
    for t in range(1, steps + 1):
        g = g64(t - 1)
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        mhat = m / (1 - b1**t)
        w = w - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(w)
    return out


def test_adam_first_step_moves_each_weight_by_lr():
    # at t=1 the bias-corrected m / sqrt(v) is sign(g): every weight moves by lr
    out = run(optim.Adam, grads=GRADS[:1], lr=0.01)
    close(out[0], W0 - 0.01 * np.sign(GRADS[0]))


def test_adam_three_steps_with_bias_correction():
    lr, b1, b2 = 0.05, 0.8, 0.9
    w = W0.astype(np.float64)
    m1 = (1 - b1) * g64(0)
    v1 = (1 - b2) * g64(0) ** 2
    w1 = w - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + 1e-8)
    m2 = b1 * m1 + (1 - b1) * g64(1)
    v2 = b2 * v1 + (1 - b2) * g64(1) ** 2
    w2 = w1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + 1e-8)
    m3 = b1 * m2 + (1 - b1) * g64(2)
    v3 = b2 * v2 + (1 - b2) * g64(2) ** 2
    w3 = w2 - lr * (m3 / (1 - b1**3)) / (np.sqrt(v3 / (1 - b2**3)) + 1e-8)
    out = run(optim.Adam, lr=lr, betas=(b1, b2))
    for got, want in zip(out, [w1, w2, w3]):
        close(got, want)
    assert out[2] == pytest.approx(adam_by_hand(3, lr=lr, b1=b1, b2=b2)[2], rel=1e-5)


def test_adam_weight_decay_is_added_to_the_gradient():
    out = run(optim.Adam, lr=0.05, weight_decay=0.5)
    for got, want in zip(out, adam_by_hand(3, lr=0.05, wd=0.5)):
        close(got, want)


def test_adam_amsgrad_uses_the_running_max_of_v():
    # a large gradient then small ones: v shrinks, so the max differs from v
    grads = [GRADS[0] * 50, GRADS[1], GRADS[2]]
    lr, b2 = 0.05, 0.5
    w = W0.astype(np.float64)
    g = [x.astype(np.float64) for x in grads]
    m, v, vmax = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    want = []
    for t in (1, 2, 3):
        m = 0.9 * m + 0.1 * g[t - 1]
        v = b2 * v + (1 - b2) * g[t - 1] ** 2
        vmax = np.maximum(vmax, v)
        w = w - lr / (1 - 0.9**t) * m / (np.sqrt(vmax) / math.sqrt(1 - b2**t) + 1e-8)
        want.append(w)
    out = run(optim.Adam, grads=grads, lr=lr, betas=(0.9, b2), amsgrad=True)
    for got, w_ in zip(out, want):
        close(got, w_)
    plain = run(optim.Adam, grads=grads, lr=lr, betas=(0.9, b2))
    assert not np.allclose(plain[2], out[2])


def test_adamw_decays_the_weights_directly():
    lr, wd = 0.05, 0.5
    w = W0.astype(np.float64)
    w1 = w * (1 - lr * wd) - lr * np.sign(g64(0))  # Adam's first step is lr * sign(g)
    out = run(optim.AdamW, lr=lr, weight_decay=wd)
    close(out[0], w1)
    for got, want in zip(out, adam_by_hand(3, lr=lr, wd=wd, decoupled=True)):
        close(got, want)


def test_adamw_amsgrad():
    out = run(optim.AdamW, lr=0.05, weight_decay=0.1, amsgrad=True, betas=(0.9, 0.5))
    want = adam_by_hand(3, lr=0.05, wd=0.1, amsgrad=True, decoupled=True, b2=0.5)
    for got, w in zip(out, want):
        close(got, w)


def test_adam_and_adamw_defaults():
    a = optim.Adam([param()])
    assert (a.defaults["lr"], a.defaults["betas"], a.defaults["eps"]) == (1e-3, (0.9, 0.999), 1e-8)
    assert a.defaults["weight_decay"] == 0 and a.defaults["amsgrad"] is False
    assert optim.AdamW([param()]).defaults["weight_decay"] == 1e-2


def test_adam_state_holds_step_and_moments():
    p = param()
    opt = optim.Adam([p], amsgrad=True)
    p.grad = Tensor(GRADS[0])
    opt.step()
    opt.step()
    state = opt.state[p]
    assert state["step"] == 2
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert isinstance(state[k], Tensor) and state[k].dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-1), "Invalid learning rate: -1"),
        (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ],
)
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_adam_rejects_bad_hyperparameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls([param()], **kwargs)


# ----------------------------------------------------------------------------------------
# RMSprop


def test_rmsprop_two_steps():
    lr, a, eps = 0.01, 0.9, 1e-8
    w = W0.astype(np.float64)
    v1 = (1 - a) * g64(0) ** 2
    w1 = w - lr * g64(0) / (np.sqrt(v1) + eps)
    v2 = a * v1 + (1 - a) * g64(1) ** 2
    w2 = w1 - lr * g64(1) / (np.sqrt(v2) + eps)
    out = run(optim.RMSprop, lr=lr, alpha=a)
    close(out[0], w1)
    close(out[1], w2)


def test_rmsprop_centered_with_momentum_and_weight_decay():
    lr, a, mu, wd, eps = 0.01, 0.9, 0.5, 0.1, 1e-8
    w = W0.astype(np.float64)
    v = np.zeros_like(w)
    gm = np.zeros_like(w)
    b = np.zeros_like(w)
    want = []
    for t in range(3):
        g = g64(t) + wd * w
        v = a * v + (1 - a) * g * g
        gm = a * gm + (1 - a) * g
        avg = np.sqrt(v - gm * gm) + eps
        b = mu * b + g / avg
        w = w - lr * b
        want.append(w)
    out = run(optim.RMSprop, lr=lr, alpha=a, momentum=mu, weight_decay=wd, centered=True)
    for got, w_ in zip(out, want):
        close(got, w_)


def test_rmsprop_centered_first_step():
    lr, a = 0.01, 0.5
    g = g64(0)
    v, gm = (1 - a) * g * g, (1 - a) * g
    w1 = W0 - lr * g / (np.sqrt(v - gm * gm) + 1e-8)
    out = run(optim.RMSprop, grads=GRADS[:1], lr=lr, alpha=a, centered=True)
    close(out[0], w1)


def test_rmsprop_defaults_and_validation():
    opt = optim.RMSprop([param()])
    assert {
        k: opt.defaults[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    } == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)
    with pytest.raises(ValueError, match="Invalid alpha value: -0.1"):
        optim.RMSprop([param()], alpha=-0.1)
    with pytest.raises(ValueError, match="Invalid momentum value: -1"):
        optim.RMSprop([param()], momentum=-1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.RMSprop([param()], lr=-1)


# ----------------------------------------------------------------------------------------
# behaviour shared by all optimizers

ALL = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.1, weight_decay=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.1)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
]
ids = [c.__name__ for c, _ in ALL]
# with plain SGD (no momentum, weight decay or maximize), whose step takes a shorter path
UPDATES = [(optim.SGD, dict(lr=0.1)), *ALL]
update_ids = ["SGD-plain", *ids]


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_updates_in_place_in_float32_without_touching_grad_or_graph(cls, kwargs):
    p = param()
    data = p.detach().numpy()
    opt = cls([p], **kwargs)
    g = GRADS[0].copy()
    p.grad = Tensor(g)
    opt.step()
    opt.step()
    assert p.detach().numpy() is data and p.detach().numpy().dtype == np.float32
    assert not np.array_equal(p.detach().numpy(), W0)
    np.testing.assert_array_equal(p.grad.detach().numpy(), GRADS[0])
    assert p.is_leaf and p.grad_fn is None
    for value in opt.state[p].values():
        if isinstance(value, Tensor):
            assert value.dtype == np.float32


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_a_step_is_one_in_place_write_of_each_parameter(cls, kwargs):
    a, b, idle = param(), param(), param()
    opt = cls([a, b, idle], **kwargs)
    a.grad, b.grad = Tensor(GRADS[0]), Tensor(GRADS[1])
    saved = a * a  # its gradient rule reads a
    opt.step()
    assert (a._version, b._version, idle._version) == (1, 1, 0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*version 1"):
        saved.sum().backward()


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_a_grad_of_another_shape_raises_instead_of_broadcasting(cls, kwargs):
    p = param()
    opt = cls([p], **kwargs)
    p.grad = Tensor(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"has shape \(1, 2\) but the parameter has shape"):
        opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), W0)


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_float64_hyperparameters_do_not_upcast(cls, kwargs):
    kwargs = {**kwargs, "lr": np.float64(kwargs["lr"])}
    p = param()
    opt = cls([p], **kwargs)
    p.grad = Tensor(GRADS[0])
    opt.step()
    assert p.detach().numpy().dtype == np.float32


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_parameters_without_grad_are_skipped(cls, kwargs):
    a, b = param(), param()
    opt = cls([a, b], **kwargs)
    a.grad = Tensor(GRADS[0])
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), W0)
    assert b not in opt.state


@pytest.mark.parametrize("cls, kwargs", UPDATES, ids=update_ids)
def test_parameters_of_different_shapes_share_scratch_safely(cls, kwargs):
    big = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, requires_grad=True)
    small = param()
    opt = cls([big, small], **kwargs)
    lone = cls([param()], **kwargs)
    lone_p = lone.param_groups[0]["params"][0]
    for g in GRADS:
        big.grad = Tensor(np.ones((3, 4), dtype=np.float32))
        small.grad = Tensor(g)
        lone_p.grad = Tensor(g)
        opt.step()
        lone.step()
    np.testing.assert_array_equal(small.detach().numpy(), lone_p.detach().numpy())


def test_step_with_closure_returns_its_loss():
    p = param()
    opt = optim.SGD([p], lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        calls.append(1)
        return loss

    loss = opt.step(closure)
    assert calls == [1]
    assert loss.item() == pytest.approx(float((W0.astype(np.float64) ** 2).sum()), rel=1e-6)
    close(p.detach().numpy(), W0 - 0.1 * 2 * W0)
    assert opt.step() is None


def test_zero_grad():
    p = param()
    opt = optim.SGD([p])
    p.grad = Tensor(GRADS[0])
    buf = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is buf
    np.testing.assert_array_equal(p.grad.detach().numpy(), 0)
    opt.zero_grad()
    assert p.grad is None
    opt.zero_grad(set_to_none=False)  # no grad: nothing to do
    assert p.grad is None


def test_trains_a_linear_regression_through_autograd():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    true_w = np.array([[1.5], [-2.0], [0.5]], dtype=np.float32)
    y = Tensor(x @ true_w)
    xt = Tensor(x)
    for cls, kwargs in [
        (optim.SGD, dict(lr=0.1, momentum=0.9)),
        (optim.Adam, dict(lr=0.1)),
        (optim.RMSprop, dict(lr=0.01)),
    ]:
        w = Tensor(np.zeros((3, 1), dtype=np.float32), requires_grad=True)
        opt = cls([w], **kwargs)
        for _ in range(300):
            opt.zero_grad()
            loss = ((xt @ w - y) ** 2).mean()
            loss.backward()
            opt.step()
        np.testing.assert_allclose(w.detach().numpy(), true_w, atol=2e-2, err_msg=cls.__name__)


# ----------------------------------------------------------------------------------------
# param groups and construction errors


def test_param_groups_take_their_own_hyperparameters():
    a, b = param(), param()
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    a.grad = Tensor(GRADS[0])
    b.grad = Tensor(GRADS[0])
    opt.step()
    close(a.detach().numpy(), W0 - 0.1 * GRADS[0])
    close(b.detach().numpy(), W0 - 1.0 * GRADS[0])


def test_add_param_group():
    a, b = param(), param()
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.5})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid learning rate: -2"):
        opt.add_param_group({"params": [param()], "lr": -2})
    assert len(opt.param_groups) == 2


def test_construction_errors():
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([])
    with pytest.raises(
        TypeError, match="should be an iterable of Tensors or dicts, but got Tensor"
    ):
        optim.SGD(param())
    with pytest.raises(TypeError, match="ordering of tensors in sets will change"):
        optim.SGD({param()})
    with pytest.raises(
        TypeError, match="optimizer can only optimize Tensors, but one of the params is ndarray"
    ):
        optim.SGD([W0])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([param() * 2])


def test_duplicate_parameter_in_a_group_warns():
    p = param()
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([p, p])


def test_generator_of_parameters_is_accepted():
    ps = [param(), param()]
    opt = optim.SGD(p for p in ps)
    assert len(opt.param_groups[0]["params"]) == 2


# ----------------------------------------------------------------------------------------
# state dicts


def test_state_dict_layout_refers_to_parameters_by_index():
    a, b, c = param(), param(), param()
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, c):
        p.grad = Tensor(GRADS[0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["momentum"] == 0.9
    assert set(sd["state"]) == {0, 2}
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"].detach().numpy(), GRADS[0])


@pytest.mark.parametrize("cls, kwargs", ALL, ids=ids)
def test_resuming_from_a_state_dict_gives_identical_steps(cls, kwargs):
    p = param()
    opt = cls([p], **kwargs)
    for g in GRADS:
        p.grad = Tensor(g)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    q = Tensor(p.detach().numpy().copy(), requires_grad=True)
    resumed = cls([q], lr=123.0)  # hyperparameters come from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    for g in reversed(GRADS):
        p.grad = Tensor(g)
        q.grad = Tensor(g)
        opt.step()
        resumed.step()
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    # the loaded buffers are copies: the saved dict did not move with training
    assert saved["state"][0] is not resumed.state_dict()["state"][0]


def test_load_state_dict_validates_before_changing_anything():
    p = param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = Tensor(GRADS[0])
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    before = copy.deepcopy(opt.state_dict())

    two_groups = copy.deepcopy(good)
    two_groups["param_groups"].append(dict(good["param_groups"][0], params=[1]))
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(two_groups)

    too_many = copy.deepcopy(good)
    too_many["param_groups"][0]["params"] = [0, 1]
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        opt.load_state_dict(too_many)

    wrong_shape = copy.deepcopy(good)
    wrong_shape["param_groups"][0]["lr"] = 9.0
    wrong_shape["state"][0]["momentum_buffer"] = Tensor(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"momentum_buffer.*shape \(3,\).*\(2, 2\)"):
        opt.load_state_dict(wrong_shape)
    assert opt.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(
        opt.state[p]["momentum_buffer"].detach().numpy(),
        before["state"][0]["momentum_buffer"].detach().numpy(),
    )

    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        bad_lr = copy.deepcopy(good)
        bad_lr["param_groups"][0]["lr"] = -1
        opt.load_state_dict(bad_lr)
    assert opt.param_groups[0]["lr"] == 0.1


def test_load_state_dict_casts_buffers_to_the_parameter_dtype():
    p = param()
    opt = optim.Adam([p])
    sd = {
        "state": {
            0: {"step": np.int64(4), "exp_avg": np.ones((2, 2)), "exp_avg_sq": np.ones((2, 2))}
        },
        "param_groups": [dict(opt.state_dict()["param_groups"][0])],
    }
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 4
    assert opt.state[p]["exp_avg"].dtype == np.float32
    assert isinstance(opt.state[p]["exp_avg"], Tensor)


# ----------------------------------------------------------------------------------------
# LR schedules


def test_steplr_values():
    p = param()
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    seen = [sched.get_last_lr()[0]]
    for _ in range(9):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125])
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
    assert sched.last_epoch == 9
    assert lr_scheduler.StepLR(optim.SGD([param()]), 2).gamma == 0.1


def test_cosine_annealing_values_follow_the_closed_form():
    opt = optim.SGD([{"params": [param()], "lr": 0.1}, {"params": [param()], "lr": 1.0}])
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    lrs = [sched.get_last_lr()]
    for _ in range(10):
        sched.step()
        lrs.append(sched.get_last_lr())
    for epoch, pair in enumerate(lrs):
        for base, lr in zip((0.1, 1.0), pair):
            want = 0.01 + (base - 0.01) * (1 + math.cos(math.pi * epoch / 4)) / 2
            assert lr == pytest.approx(want, rel=1e-12)
    assert lrs[4] == pytest.approx([0.01, 0.01])  # reaches eta_min at T_max
    assert lrs[8] == pytest.approx([0.1, 1.0])  # and comes back after 2 * T_max
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 1.0]


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD([param()], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 3 and sd["base_lrs"] == [1.0]
    opt2 = optim.SGD([param()], lr=1.0)
    sched2 = lr_scheduler.StepLR(opt2, step_size=5)
    sched2.load_state_dict(sd)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() == pytest.approx([0.01])


def test_scheduler_errors():
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lr_scheduler.StepLR([], step_size=1)
    opt = optim.SGD([param()])
    with pytest.raises(
        KeyError,
        match=r"param 'initial_lr' is not specified in "
        r"param_groups\[0\] when resuming",
    ):
        lr_scheduler.CosineAnnealingLR(opt, T_max=10, last_epoch=3)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        lr_scheduler.StepLR(opt, step_size=0)


# ----------------------------------------------------------------------------------------
# against PyTorch

TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
]


@pytest.mark.parametrize(
    "name, kwargs", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)]
)
def test_five_steps_match_pytorch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 3)).astype(np.float32)
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    b0 = rng.standard_normal(2).astype(np.float32)
    ours = [Tensor(w0.copy(), requires_grad=True), Tensor(b0.copy(), requires_grad=True)]
    theirs = [
        torch.tensor(w0.copy(), requires_grad=True),
        torch.tensor(b0.copy(), requires_grad=True),
    ]
    opt = getattr(optim, name)(ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(5):
        # gradient of 0.5 * ||a @ w + b||^2 (depends on the weights, so errors compound)
        for ps, wrap in ((ours, Tensor), (theirs, torch.tensor)):
            w = ps[0].detach().numpy() if ps is ours else ps[0].detach().numpy()
            b = ps[1].detach().numpy() if ps is ours else ps[1].detach().numpy()
            r = a @ w + b
            ps[0].grad = wrap(a.T @ r)
            ps[1].grad = wrap(r.sum(0))
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    # and the state buffers agree too
    for k, v in opt.state[ours[0]].items():
        tv = topt.state[theirs[0]][k]
        if k == "step":
            assert v == int(tv)
        else:
            np.testing.assert_allclose(v.detach().numpy(), tv.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda m, o: m.StepLR(o, step_size=3, gamma=0.3),
        lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    ],
    ids=["StepLR", "CosineAnnealingLR"],
)
def test_schedules_match_pytorch(make):
    torch = pytest.importorskip("torch")
    opt = optim.SGD([param()], lr=0.2)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.2)
    sched, tsched = make(lr_scheduler, opt), make(torch.optim.lr_scheduler, topt)
    for _ in range(20):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("Adam", dict(lr=0.05, amsgrad=True)),
        ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ],
)
def test_a_pytorch_optimizer_state_dict_loads_and_continues_identically(name, kwargs):
    torch = pytest.importorskip("torch")
    tp = torch.tensor(W0.copy(), requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kwargs)
    for g in GRADS:
        tp.grad = torch.tensor(g)
        topt.step()
    p = Tensor(tp.detach().numpy().copy(), requires_grad=True)
    opt = getattr(optim, name)([p])
    opt.load_state_dict(topt.state_dict())  # buffers are torch tensors: converted
    assert opt.param_groups[0]["lr"] == kwargs["lr"]
    for g in GRADS:
        tp.grad = torch.tensor(g)
        p.grad = Tensor(g)
        topt.step()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
