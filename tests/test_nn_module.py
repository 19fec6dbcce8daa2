"""Module, Parameter and containers: registration, names, state_dict, hooks, repr.

These tests use hand-made modules built from Tensor operations only, so they exercise
the bookkeeping independently of the layers.
"""

from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import nn
from tinygrad_init.gradcheck import gradcheck


class Affine(nn.Module):
    """y = x @ weight.T + bias, written with Tensor operations."""

    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        rng = np.random.default_rng(n_in * 10 + n_out)
        self.weight = nn.Parameter(rng.standard_normal((n_out, n_in)).astype(np.float32))
        if bias:
            self.bias = nn.Parameter(np.zeros(n_out, np.float32))
        else:
            self.register_parameter("bias", None)
        self.n_in, self.n_out = n_in, n_out

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return f"n_in={self.n_in}, n_out={self.n_out}"


class Tanh(nn.Module):
    def forward(self, x):
        return x.tanh()


class WithStats(nn.Module):
    """A parameter, a persistent buffer, a non-persistent buffer and a child."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tg.ones(3))
        self.register_buffer("running", tg.zeros(3))
        self.register_buffer("count", tg.tensor(0))
        self.register_buffer("scratch", tg.zeros(2), persistent=False)
        self.inner = Affine(3, 2)

    def forward(self, x):
        return self.inner(x * self.scale)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Affine(4, 3)
        self.act = Tanh()
        self.block = nn.Sequential(Affine(3, 3), Tanh(), WithStats())
        self.heads = nn.ModuleList([Affine(2, 1), Affine(2, 1, bias=False)])

    def forward(self, x):
        h = self.block(self.act(self.fc1(x)))
        return self.heads[0](h) + self.heads[1](h)


NET_PARAMS = [
    "fc1.weight",
    "fc1.bias",
    "block.0.weight",
    "block.0.bias",
    "block.2.scale",
    "block.2.inner.weight",
    "block.2.inner.bias",
    "heads.0.weight",
    "heads.0.bias",
    "heads.1.weight",
]
NET_STATE = [
    "fc1.weight",
    "fc1.bias",
    "block.0.weight",
    "block.0.bias",
    "block.2.scale",
    "block.2.running",
    "block.2.count",
    "block.2.inner.weight",
    "block.2.inner.bias",
    "heads.0.weight",
    "heads.0.bias",
    "heads.1.weight",
]


# ----------------------------------------------------------------------------------------
# Parameter


def test_parameter_requires_grad_and_shares_data():
    a = np.arange(3.0, dtype=np.float32)
    p = nn.Parameter(a)
    assert p.requires_grad and p.is_leaf and isinstance(p, tg.Tensor)
    a[0] = 7
    assert p.detach().numpy()[0] == 7
    assert not nn.Parameter(tg.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)


def test_parameter_repr():
    p = nn.Parameter(tg.tensor([1.0, 2.0]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"


def test_parameter_of_integers_cannot_require_grad():
    with pytest.raises(TypeError, match="floating point"):
        nn.Parameter(np.arange(3))


def test_ops_on_parameters_give_plain_tensors():
    p = nn.Parameter(tg.ones(2))
    assert type(p * 2) is tg.Tensor
    assert type(p.detach()) is tg.Tensor


# ----------------------------------------------------------------------------------------
# Registration


def test_named_parameters_order_and_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NET_PARAMS
    assert [p.shape for p in net.parameters()] == [p.shape for _, p in net.named_parameters()]
    assert [n for n, _ in net.named_parameters(prefix="model")] == [
        "model." + n for n in NET_PARAMS
    ]
    assert [n for n, _ in net.block[2].named_parameters(recurse=False)] == ["scale"]


def test_state_dict_names_include_persistent_buffers_only():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == NET_STATE
    assert [n for n, _ in net.named_buffers()] == [
        "block.2.running",
        "block.2.count",
        "block.2.scratch",
    ]


def test_state_dict_values_are_detached_views():
    net = Affine(2, 2)
    sd = net.state_dict()
    assert not sd["weight"].requires_grad and type(sd["weight"]) is tg.Tensor
    net.weight.data[0, 0] = 42.0
    assert sd["weight"].detach().numpy()[0, 0] == 42.0
    assert net.state_dict(keep_vars=True)["weight"] is net.weight


def test_state_dict_names_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = tnn.Linear(4, 3)
            self.act = tnn.Tanh()
            self.block = tnn.Sequential(tnn.Linear(3, 3), tnn.Tanh(), TorchStats())
            self.heads = tnn.ModuleList([tnn.Linear(2, 1), tnn.Linear(2, 1, bias=False)])

    class TorchStats(tnn.Module):
        def __init__(self):
            super().__init__()
            self.scale = tnn.Parameter(torch.ones(3))
            self.register_buffer("running", torch.zeros(3))
            self.register_buffer("count", torch.tensor(0))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)
            self.inner = tnn.Linear(3, 2)

    t = TorchNet()
    assert list(t.state_dict()) == NET_STATE
    assert [n for n, _ in t.named_parameters()] == NET_PARAMS
    assert [n for n, _ in t.named_modules()] == [n for n, _ in Net().named_modules()]


def test_shared_parameter_is_deduplicated_in_parameters_not_in_state_dict():
    a, b = Affine(2, 2), Affine(2, 2)
    b.weight = a.weight
    seq = nn.Sequential(a, b)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert len(list(seq.parameters())) == 3
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in seq.named_parameters(remove_duplicate=False)] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]


def test_shared_module_is_visited_once():
    shared = Affine(2, 2)
    seq = nn.Sequential(shared, Tanh(), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert len(list(seq.children())) == 2
    assert len(list(seq.parameters())) == 2


def test_modules_children_and_named_children():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "block", "heads"]
    assert [type(m).__name__ for m in net.children()] == [
        "Affine",
        "Tanh",
        "Sequential",
        "ModuleList",
    ]
    names = [n for n, _ in net.named_modules()]
    assert names == [
        "",
        "fc1",
        "act",
        "block",
        "block.0",
        "block.1",
        "block.2",
        "block.2.inner",
        "heads",
        "heads.0",
        "heads.1",
    ]
    assert next(iter(net.modules())) is net


def test_attribute_assignment_moves_between_registries():
    m = nn.Module()
    m.x = Affine(1, 1)
    assert "x" in m._modules
    m.x = nn.Parameter(tg.ones(1))
    assert "x" in m._parameters and "x" not in m._modules
    with pytest.raises(TypeError, match="cannot assign 'Affine' as parameter 'x'"):
        m.x = Affine(1, 1)
    m.x = None
    assert m._parameters["x"] is None
    del m.x
    m.x = Affine(1, 1)
    m.x = None
    assert m._modules["x"] is None and m.x is None
    m.register_buffer("buf", tg.zeros(1))
    m.buf = tg.ones(2)
    assert m._buffers["buf"].shape == (2,)
    m.plain = 3
    assert m.plain == 3 and "plain" not in m._parameters


def test_assigning_tensor_to_parameter_slot_raises():
    m = Affine(2, 2)
    with pytest.raises(
        TypeError,
        match=r"cannot assign 'Tensor' as parameter 'weight' "
        r"\(nn.Parameter or None expected\)",
    ):
        m.weight = tg.ones(2, 2)


def test_delattr_removes_from_registries():
    m = WithStats()
    del m.scale
    del m.running
    del m.inner
    assert list(m.state_dict()) == ["count"]
    with pytest.raises(AttributeError, match="'WithStats' object has no attribute 'inner'"):
        m.inner  # noqa: B018


def test_getattr_error_names_class_and_attribute():
    with pytest.raises(AttributeError, match="'Affine' object has no attribute 'nope'"):
        Affine(1, 1).nope  # noqa: B018


def test_assignment_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.ones(1))
            super().__init__()

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_registration_errors():
    m = Affine(1, 1)
    with pytest.raises(KeyError, match='buffer name can.*t contain ".", got: a.b'):
        m.register_buffer("a.b", tg.zeros(1))
    with pytest.raises(KeyError, match="parameter name can.*t be empty"):
        m.register_parameter("", None)
    with pytest.raises(KeyError, match="attribute 'n_in' already exists"):
        m.register_buffer("n_in", tg.zeros(1))
    with pytest.raises(TypeError, match="Tensor or None required"):
        m.register_buffer("b", np.zeros(1))
    with pytest.raises(TypeError, match="nn.Parameter or None required"):
        m.register_parameter("p", tg.ones(1))
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("c", 3)
    # a Parameter made from a computed tensor is a new leaf
    assert nn.Parameter(tg.ones(1, requires_grad=True) * 2).is_leaf


def test_forward_missing_raises():
    with pytest.raises(
        NotImplementedError,
        match=r"Module \[Module\] is missing the "
        r'required "forward" function',
    ):
        nn.Module()(tg.ones(1))


def test_get_submodule_and_parameter():
    net = Net()
    assert net.get_submodule("block.2.inner") is net.block[2].inner
    assert net.get_parameter("block.2.inner.bias") is net.block[2].inner.bias
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        net.get_submodule("block.nope")


# ----------------------------------------------------------------------------------------
# Modes and maintenance


def test_train_eval_propagate():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_zero_grad_set_to_none_and_zeros():
    net = Affine(3, 2)
    net(tg.ones(4, 3)).sum().backward()
    assert net.weight.grad is not None
    buffer = net.weight.grad
    net.zero_grad(set_to_none=False)
    assert net.weight.grad is buffer and not buffer.detach().numpy().any()
    net(tg.ones(4, 3)).sum().backward()
    net.zero_grad()
    assert net.weight.grad is None and net.bias.grad is None


def test_apply_visits_children_first():
    net = nn.Sequential(Affine(1, 1), nn.Sequential(Tanh()))
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Affine", "Tanh", "Sequential", "Sequential"]


def test_apply_can_reinitialize():
    net = nn.Sequential(Affine(2, 2), Affine(2, 2))

    def fill(m):
        if isinstance(m, Affine):
            m.weight.data[...] = 0.5

    net.apply(fill)
    assert all((m.weight.detach().numpy() == 0.5).all() for m in net)


def test_to_double_and_float_cast_in_place():
    m = WithStats()
    p = m.scale
    m.double()
    assert m.scale is p and p.dtype == np.float64
    assert m.running.dtype == np.float64 and m.inner.weight.dtype == np.float64
    assert m.count.dtype == np.int64
    m.to(np.float32)
    assert p.dtype == np.float32
    m.to("float64")
    assert p.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(np.int32)


def test_requires_grad_():
    m = Affine(2, 2)
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


# ----------------------------------------------------------------------------------------
# load_state_dict


def test_load_state_dict_round_trip_with_numpy_and_tensors():
    a, b = Net(), Net()
    for p in b.parameters():
        p.data[...] = 0
    src = {
        k: (v.detach().numpy().copy() if i % 2 else v)
        for i, (k, v) in enumerate(a.state_dict().items())
    }
    result = b.load_state_dict(src)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.detach().numpy(), vb.detach().numpy())
    # values are copied into the existing parameters, not shared
    ids = [id(p) for p in b.parameters()]
    a.fc1.weight.data[...] = 9
    assert not (b.fc1.weight.detach().numpy() == 9).any()
    assert ids == [id(p) for p in b.parameters()]


def test_load_state_dict_casts_to_parameter_dtype():
    m = Affine(2, 2)
    m.load_state_dict({"weight": np.ones((2, 2), np.float64), "bias": [1, 2]})
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.bias.detach().numpy(), [1.0, 2.0])


def test_load_state_dict_reports_everything_and_changes_nothing():
    net = Net()
    before = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    bad = {k: v.detach().numpy() + 1 for k, v in net.state_dict().items()}
    del bad["fc1.bias"], bad["block.2.count"]
    bad["fc1.weight"] = np.zeros((5, 4))
    bad["heads.1.weight"] = np.zeros((2, 1))
    bad["extra.weight"] = np.zeros(1)
    bad["block.9.bias"] = np.zeros(1)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(bad)
    msg = str(info.value)
    assert msg == (
        "Error(s) in loading state_dict for Net:\n"
        '\tMissing key(s) in state_dict: "fc1.bias", "block.2.count". \n'
        '\tUnexpected key(s) in state_dict: "extra.weight", "block.9.bias". \n'
        "\tsize mismatch for fc1.weight: copying a param with shape (5, 4) from checkpoint, "
        "the shape in current model is (3, 4).\n"
        "\tsize mismatch for heads.1.weight: copying a param with shape (2, 1) from "
        "checkpoint, the shape in current model is (1, 2)."
    )
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), before[k])


def test_load_state_dict_non_strict():
    net = Affine(2, 2)
    result = net.load_state_dict({"weight": np.ones((2, 2)), "junk": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["junk"]
    assert (net.weight.detach().numpy() == 1).all()
    assert tuple(result) == (["bias"], ["junk"])


def test_load_state_dict_non_strict_still_rejects_shapes_atomically():
    net = Affine(2, 2)
    w = net.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="size mismatch for bias"):
        net.load_state_dict({"weight": np.ones((2, 2)), "bias": np.ones(3)}, strict=False)
    np.testing.assert_array_equal(net.weight.detach().numpy(), w)


def test_load_state_dict_rejects_non_mapping_and_bad_values():
    net = Affine(1, 1)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got list"):
        net.load_state_dict([("weight", np.ones((1, 1)))])
    with pytest.raises(RuntimeError, match='While copying the parameter named "weight"'):
        net.load_state_dict({"weight": np.array([["a"]]), "bias": np.ones(1)})


def test_load_state_dict_from_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    ours = nn.Sequential(Affine(4, 3), Tanh(), Affine(3, 2))
    ours.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        ours(tg.tensor(x)).detach().numpy(),
        t(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


# ----------------------------------------------------------------------------------------
# Forward hooks


def test_forward_pre_hook_and_forward_hook_order_and_replacement():
    m = Affine(2, 2)
    calls = []

    def pre(module, args):
        calls.append(("pre", module, len(args)))
        return args[0] * 0  # non-tuple: wrapped into a 1-tuple

    def post(module, args, output):
        calls.append(("post", args[0].detach().numpy().sum(), output.shape))
        return output + 1

    h1 = m.register_forward_pre_hook(pre)
    h2 = m.register_forward_hook(post)
    out = m(tg.ones(3, 2))
    assert calls == [("pre", m, 1), ("post", 0.0, (3, 2))]
    np.testing.assert_allclose(
        out.detach().numpy(), 1 + m.bias.detach().numpy()[None, :].repeat(3, 0)
    )
    h1.remove()
    h2.remove()
    calls.clear()
    out = m(tg.ones(3, 2))
    assert calls == []
    np.testing.assert_allclose(
        out.detach().numpy(), (tg.ones(3, 2) @ m.weight.T + m.bias).detach().numpy()
    )


def test_forward_hook_prepend_and_context_manager():
    m = Tanh()
    order = []
    m.register_forward_hook(lambda *a: order.append("a"))
    with m.register_forward_hook(lambda *a: order.append("b"), prepend=True):
        m(tg.ones(1))
    m(tg.ones(1))
    assert order == ["b", "a", "a"]


def test_forward_hooks_see_layer_outputs_in_sequential():
    seq = nn.Sequential(Affine(3, 4), Tanh(), Affine(4, 2))
    shapes = []
    for layer in seq:
        layer.register_forward_hook(
            lambda mod, inp, out: shapes.append((type(mod).__name__, inp[0].shape, out.shape))
        )
    seq(tg.ones(5, 3))
    assert shapes == [
        ("Affine", (5, 3), (5, 4)),
        ("Tanh", (5, 4), (5, 4)),
        ("Affine", (5, 4), (5, 2)),
    ]


def test_hook_must_be_callable():
    with pytest.raises(TypeError, match="hook must be callable"):
        Tanh().register_forward_hook(3)


# ----------------------------------------------------------------------------------------
# Backward hooks


class Bilinear(nn.Module):
    """Two inputs: y = (x @ W.T) * z."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(np.random.default_rng(1).standard_normal((2, 3)))

    def forward(self, x, z, scale=1.0):
        return (x @ self.weight.T) * z * scale


def test_full_backward_hook_values_single_input():
    m = Affine(3, 2)
    m.double()
    x = tg.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((mod, gi, go)))
    y = m(x)
    g = np.random.default_rng(1).standard_normal((4, 2))
    y.backward(tg.tensor(g))
    ((mod, grad_input, grad_output),) = seen
    assert mod is m and len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_allclose(grad_output[0].detach().numpy(), g)
    np.testing.assert_allclose(grad_input[0].detach().numpy(), g @ m.weight.detach().numpy())
    np.testing.assert_allclose(x.grad.detach().numpy(), g @ m.weight.detach().numpy())


def test_full_backward_hook_grad_input_is_through_the_module_only():
    m = Affine(3, 3)
    m.double()
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append(gi[0].detach().numpy().copy()))
    (m(x).sum() + (x * 5).sum()).backward()
    np.testing.assert_allclose(seen[0], np.ones((2, 3)) @ m.weight.detach().numpy())
    np.testing.assert_allclose(x.grad.detach().numpy(), seen[0] + 5)


def test_full_backward_hook_two_inputs_one_call_and_replacement():
    m = Bilinear()
    rng = np.random.default_rng(2)
    x = tg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    z = tg.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    calls = []

    def hook(mod, gi, go):
        calls.append((gi, go))
        return (gi[0] * 2, None)

    m.register_full_backward_hook(hook)
    y = m(x, z, 3.0)
    y.sum().backward()
    assert len(calls) == 1
    gi, go = calls[0]
    w = m.weight.detach().numpy()
    expected_x = (z.detach().numpy() * 3.0) @ w
    expected_z = x.detach().numpy() @ w.T * 3.0
    np.testing.assert_allclose(gi[0].detach().numpy(), expected_x)
    np.testing.assert_allclose(gi[1].detach().numpy(), expected_z)
    np.testing.assert_allclose(go[0].detach().numpy(), np.ones((4, 2)))
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * expected_x)
    np.testing.assert_allclose(z.grad.detach().numpy(), 0.0)
    # the parameter gradient is unaffected by the replacement
    np.testing.assert_allclose(
        m.weight.grad.detach().numpy(), (z.detach().numpy() * 3.0).T @ x.detach().numpy()
    )


def test_full_backward_hook_input_without_grad_is_none():
    m = Bilinear()
    x = tg.tensor(np.ones((1, 3)))
    z = tg.tensor(np.ones((1, 2)), requires_grad=True)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append(gi))
    m(x, z).sum().backward()
    assert seen[0][0] is None and seen[0][1].shape == (1, 2)


def test_full_backward_hook_when_no_input_requires_grad():
    m = Affine(3, 2)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    m(tg.ones(4, 3)).sum().backward()
    assert len(seen) == 1
    gi, go = seen[0]
    assert gi == (None,) and go[0].shape == (4, 2)
    assert m.weight.grad is not None


def test_full_backward_hooks_in_sequential_fire_last_to_first():
    seq = nn.Sequential(Affine(3, 4), Tanh(), Affine(4, 2))
    order = []
    for i, layer in enumerate(seq):
        layer.register_full_backward_hook(
            lambda mod, gi, go, i=i: order.append(
                (i, gi[0].shape if gi[0] is not None else None, go[0].shape)
            )
        )
    x = tg.ones(5, 3, requires_grad=True)
    seq(x).sum().backward()
    assert order == [(2, (5, 4), (5, 2)), (1, (5, 4), (5, 4)), (0, (5, 3), (5, 4))]


def test_full_backward_hook_handle_remove_and_no_grad():
    m = Affine(2, 2)
    seen = []
    h = m.register_full_backward_hook(lambda *a: seen.append(1))
    with tg.no_grad():
        out = m(tg.ones(1, 2, requires_grad=True))
    assert not out.requires_grad
    h.remove()
    m(tg.ones(1, 2, requires_grad=True)).sum().backward()
    assert seen == []


def test_full_backward_hook_keeps_gradients_exact():
    m = Bilinear()
    m.register_full_backward_hook(lambda *a: None)
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    z = tg.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    assert gradcheck(lambda x, z, w: m(x, z), (x, z, m.weight))


def test_full_backward_hook_matches_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.Linear(3, 2).double()
    ours = Affine(3, 2).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    got, want = [], []
    t.register_full_backward_hook(lambda m, gi, go: want.append((gi[0], go[0])))
    ours.register_full_backward_hook(lambda m, gi, go: got.append((gi[0], go[0])))
    x = np.random.default_rng(4).standard_normal((5, 3))
    tx = torch.tensor(x, requires_grad=True)
    (t(tx) ** 2).sum().backward()
    (ours(tg.tensor(x, requires_grad=True)) ** 2).sum().backward()
    for a, b in zip(got[0], want[0]):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------------------
# Containers


def test_sequential_indexing_slicing_len_iter_append():
    a, b, c = Affine(2, 3), Tanh(), Affine(3, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b
    assert list(seq) == [a, b]
    assert seq.append(c) is seq and seq[2] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub._modules) == ["1", "2"]
    assert sub[0] is b
    with pytest.raises(IndexError, match="index 3 is out of range"):
        seq[3]  # noqa: B018
    out = seq(tg.ones(4, 2))
    assert out.shape == (4, 1)


def test_sequential_from_ordered_dict_and_delete_insert():
    seq = nn.Sequential(OrderedDict([("enc", Affine(2, 2)), ("act", Tanh())]))
    assert [n for n, _ in seq.named_parameters()] == ["enc.weight", "enc.bias"]
    seq2 = nn.Sequential(Affine(1, 1), Tanh(), Affine(1, 1))
    del seq2[0]
    assert list(seq2._modules) == ["0", "1"] and isinstance(seq2[0], Tanh)
    seq2.insert(0, Affine(1, 1))
    assert [type(m).__name__ for m in seq2] == ["Affine", "Tanh", "Affine"]
    seq2[1] = Affine(1, 1)
    assert isinstance(seq2[1], Affine)


def test_module_list():
    ml = nn.ModuleList([Affine(1, 1)])
    ml.append(Tanh())
    ml.extend([Affine(1, 2), Affine(2, 2)])
    ml.insert(1, Tanh())
    assert [type(m).__name__ for m in ml] == ["Affine", "Tanh", "Tanh", "Affine", "Affine"]
    assert len(ml) == 5 and isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    assert ml[-1] is list(ml)[-1]
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    del ml[1]
    assert list(ml._modules) == ["0", "1", "2", "3"]
    with pytest.raises(TypeError, match="should be called with an iterable"):
        ml.extend(Tanh())


def test_module_dict():
    md = nn.ModuleDict({"a": Affine(1, 1), "b": Tanh()})
    md["c"] = Affine(1, 2)
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert isinstance(md.pop("b"), Tanh) and list(md.keys()) == ["a", "c"]


# ----------------------------------------------------------------------------------------
# repr


def test_repr_nested():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (fc1): Affine(n_in=4, n_out=3)\n"
        "  (act): Tanh()\n"
        "  (block): Sequential(\n"
        "    (0): Affine(n_in=3, n_out=3)\n"
        "    (1): Tanh()\n"
        "    (2): WithStats(\n"
        "      (inner): Affine(n_in=3, n_out=2)\n"
        "    )\n"
        "  )\n"
        "  (heads): ModuleList(\n"
        "    (0-1): 2 x Affine(n_in=2, n_out=1)\n"
        "  )\n"
        ")"
    )


def test_repr_module_list_groups_repeats_and_multiline_extra_repr():
    ml = nn.ModuleList([Tanh(), Tanh(), Tanh(), Affine(1, 1), Tanh()])
    assert repr(ml) == (
        "ModuleList(\n  (0-2): 3 x Tanh()\n  (3): Affine(n_in=1, n_out=1)\n  (4): Tanh()\n)"
    )
    assert repr(nn.ModuleList()) == "ModuleList()"
    assert repr(nn.Sequential()) == "Sequential()"

    class Two(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    assert repr(Two()) == "Two(\n  a=1\n  b=2\n)"
