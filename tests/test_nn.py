"""Layers, activations and losses of tinygrad_init.nn: repr, names, shapes, errors,
train/eval behaviour, initialization, finite-difference gradients and values vs PyTorch."""

import functools
import math

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import nn
from tinygrad_init.gradcheck import gradcheck
from tinygrad_init.tensor import ShapeError


def rand(*shape, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.tensor(data, requires_grad=requires_grad)


# ----------------------------------------------------------------------------------------
# Public paths


def test_functional_init_and_utils_paths():
    import tinygrad_init.nn.functional as F
    from tinygrad_init import functional, init

    assert nn.functional.relu is functional.relu and F.conv2d is functional.conv2d
    assert nn.init.kaiming_uniform_ is init.kaiming_uniform_
    assert set(functional.__all__) <= set(dir(F))
    assert callable(nn.utils.clip_grad_norm_)
    for name in nn.__all__:
        assert hasattr(nn, name), name


# ----------------------------------------------------------------------------------------
# repr

REPRS = [
    (lambda: nn.Linear(784, 10), "Linear(in_features=784, out_features=10, bias=True)"),
    (lambda: nn.Linear(3, 2, bias=False), "Linear(in_features=3, out_features=2, bias=False)"),
    (lambda: nn.Conv2d(1, 2, 3), "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))"),
    (
        lambda: nn.Conv2d(4, 2, (3, 2), stride=2, padding=1, dilation=2, groups=2, bias=False),
        "Conv2d(4, 2, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "groups=2, bias=False)",
    ),
    (
        lambda: nn.Conv2d(1, 1, 3, padding="same"),
        "Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1), padding=same)",
    ),
    (
        lambda: nn.MaxPool2d(2),
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
    ),
    (lambda: nn.AvgPool2d(3, 1, 1), "AvgPool2d(kernel_size=3, stride=1, padding=1)"),
    (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
    (lambda: nn.Dropout(), "Dropout(p=0.5, inplace=False)"),
    (
        lambda: nn.BatchNorm1d(3),
        "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)",
    ),
    (
        lambda: nn.BatchNorm2d(8, affine=False, momentum=None),
        "BatchNorm2d(8, eps=1e-05, momentum=None, affine=False, bias=False, "
        "track_running_stats=True)",
    ),
    (lambda: nn.LayerNorm(4), "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"),
    (lambda: nn.Embedding(3, 4), "Embedding(3, 4)"),
    (lambda: nn.Embedding(3, 4, padding_idx=1), "Embedding(3, 4, padding_idx=1)"),
    (lambda: nn.Identity(), "Identity()"),
    (lambda: nn.ReLU(), "ReLU()"),
    (lambda: nn.ReLU(inplace=True), "ReLU(inplace=True)"),
    (lambda: nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (lambda: nn.LeakyReLU(0.2, inplace=True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda: nn.Sigmoid(), "Sigmoid()"),
    (lambda: nn.Tanh(), "Tanh()"),
    (lambda: nn.GELU(), "GELU(approximate='none')"),
    (lambda: nn.GELU("tanh"), "GELU(approximate='tanh')"),
    (lambda: nn.SiLU(), "SiLU()"),
    (lambda: nn.ELU(), "ELU(alpha=1.0)"),
    (lambda: nn.SELU(), "SELU()"),
    (lambda: nn.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (lambda: nn.Softmax(dim=1), "Softmax(dim=1)"),
    (lambda: nn.LogSoftmax(dim=-1), "LogSoftmax(dim=-1)"),
    (lambda: nn.MSELoss(), "MSELoss()"),
    (lambda: nn.L1Loss(), "L1Loss()"),
    (lambda: nn.HuberLoss(), "HuberLoss()"),
    (lambda: nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (lambda: nn.NLLLoss(), "NLLLoss()"),
    (lambda: nn.BCELoss(), "BCELoss()"),
    (lambda: nn.BCEWithLogitsLoss(), "BCEWithLogitsLoss()"),
]


@pytest.mark.parametrize("make,expected", REPRS, ids=[r[1].split("(")[0] for r in REPRS])
def test_layer_repr(make, expected):
    assert repr(make()) == expected


def test_sequential_repr_exact():
    model = nn.Sequential(nn.Linear(784, 10), nn.ReLU())
    assert repr(model) == (
        "Sequential(\n  (0): Linear(in_features=784, out_features=10, bias=True)\n  (1): ReLU()\n)"
    )


def _torch_equivalent(torch, expr):
    """Evaluate a constructor expression written for our nn in torch.nn."""
    return eval(expr, {"nn": torch.nn})


TORCH_EXPRS = [
    "nn.Linear(784, 10)",
    "nn.Linear(3, 2, bias=False)",
    "nn.Conv2d(1, 2, 3)",
    "nn.Conv2d(4, 2, (3, 2), stride=2, padding=1, dilation=2, groups=2, bias=False)",
    "nn.Conv2d(1, 1, 3, padding='same')",
    "nn.MaxPool2d(2)",
    "nn.AvgPool2d(3, 1, 1)",
    "nn.Flatten()",
    "nn.Dropout()",
    "nn.BatchNorm1d(3)",
    "nn.BatchNorm2d(8, affine=False, momentum=None)",
    "nn.LayerNorm(4)",
    "nn.LayerNorm((2, 3), elementwise_affine=False)",
    "nn.Embedding(3, 4)",
    "nn.Embedding(3, 4, padding_idx=1)",
    "nn.Identity()",
    "nn.ReLU()",
    "nn.ReLU(inplace=True)",
    "nn.LeakyReLU()",
    "nn.LeakyReLU(0.2, inplace=True)",
    "nn.Sigmoid()",
    "nn.Tanh()",
    "nn.GELU()",
    "nn.GELU('tanh')",
    "nn.SiLU()",
    "nn.ELU()",
    "nn.ELU(0.5)",
    "nn.SELU()",
    "nn.Softplus()",
    "nn.Softplus(2, 10)",
    "nn.Softmax(dim=1)",
    "nn.LogSoftmax(dim=-1)",
    "nn.MSELoss()",
    "nn.L1Loss()",
    "nn.HuberLoss(delta=2.0)",
    "nn.CrossEntropyLoss()",
    "nn.NLLLoss()",
    "nn.BCELoss()",
    "nn.BCEWithLogitsLoss()",
    "nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), "
    "nn.Flatten(), nn.Linear(4, 2))",
]


@pytest.mark.parametrize("expr", TORCH_EXPRS)
def test_repr_and_state_dict_keys_match_torch(expr):
    torch = pytest.importorskip("torch")
    ours = eval(expr, {"nn": nn})
    theirs = _torch_equivalent(torch, expr)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for (_, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert tuple(a.shape) == tuple(b.shape)


# ----------------------------------------------------------------------------------------
# Names in a typical model


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.ln = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        h = self.pool(nn.functional.relu(self.bn(self.conv(x))))
        return self.fc2(self.drop(nn.functional.gelu(self.ln(self.fc1(self.flat(h))))))


CONVNET_STATE = [
    "conv.weight",
    "conv.bias",
    "bn.weight",
    "bn.bias",
    "bn.running_mean",
    "bn.running_var",
    "bn.num_batches_tracked",
    "fc1.weight",
    "fc1.bias",
    "ln.weight",
    "ln.bias",
    "fc2.weight",
    "fc2.bias",
]


def test_convnet_state_dict_names_and_forward():
    net = ConvNet()
    assert list(net.state_dict()) == CONVNET_STATE
    assert [n for n, _ in net.named_parameters()] == [
        k for k in CONVNET_STATE if not k.startswith("bn.r") and "num_batches" not in k
    ]
    assert [n for n, _ in net.named_buffers()] == [
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    out = net(rand(2, 1, 8, 8))
    assert out.shape == (2, 3)
    loss = nn.CrossEntropyLoss()(out, tg.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())


def test_sequential_state_dict_names_are_indices():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 1))
    assert list(model.state_dict()) == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "2.running_mean",
        "2.running_var",
        "2.num_batches_tracked",
        "3.weight",
        "3.bias",
    ]


def test_weighted_loss_weight_is_a_buffer():
    loss = nn.CrossEntropyLoss(weight=tg.tensor([1.0, 2.0]))
    assert list(loss.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=[2.0]).state_dict()) == ["pos_weight"]


# ----------------------------------------------------------------------------------------
# Shape errors


def test_linear_shape_error_message():
    with pytest.raises(ShapeError) as info:
        nn.Linear(784, 10)(tg.ones(32, 100))
    assert str(info.value) == (
        "Linear(in_features=784, out_features=10): expected input with "
        "last dimension 784, got shape (32, 100)"
    )
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)


def test_linear_reads_its_current_parameters():
    lin = nn.Linear(3, 2)
    x = tg.ones(4, 3)
    lin.bias = None
    np.testing.assert_array_equal(
        lin(x).detach().numpy(), x.numpy() @ lin.weight.detach().numpy().T
    )
    lin.weight = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(lin(x).detach().numpy(), np.zeros((4, 2), dtype=np.float32))
    del lin.bias
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'bias'"):
        lin(x)


def test_conv_shape_error_names_channels():
    with pytest.raises(
        ShapeError,
        match=r"^Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, "
        r"1\)\): expected input with 3 channels, of shape "
        r"\(N, 3, H, W\) or \(3, H, W\), got shape "
        r"\(2, 1, 8, 8\)$",
    ):
        nn.Conv2d(3, 8, 3)(tg.ones(2, 1, 8, 8))
    with pytest.raises(ShapeError, match=r"got shape \(8, 8\)"):
        nn.Conv2d(3, 8, 3)(tg.ones(8, 8))


def test_batchnorm_shape_errors():
    with pytest.raises(
        ShapeError,
        match=r"^BatchNorm1d\(4, .*\): expected input with 4 "
        r"features, of shape \(N, 4\) or \(N, 4, L\), got "
        r"shape \(10, 3\)$",
    ):
        nn.BatchNorm1d(4)(tg.ones(10, 3))
    with pytest.raises(
        ShapeError,
        match=r"expected input with 4 features, of shape "
        r"\(N, 4, H, W\), got shape \(2, 4, 5\)",
    ):
        nn.BatchNorm2d(4)(tg.ones(2, 4, 5))
    with pytest.raises(
        ValueError,
        match="expected more than 1 value per channel when training, got input of shape \\(1, 4\\)",
    ):
        nn.BatchNorm1d(4)(tg.ones(1, 4))


def test_layernorm_and_embedding_errors():
    with pytest.raises(
        ShapeError,
        match=r"^LayerNorm\(\(4,\), .*\): expected input whose last "
        r"dimensions are \(4,\), got shape \(2, 5\)$",
    ):
        nn.LayerNorm(4)(tg.ones(2, 5))
    with pytest.raises(
        IndexError,
        match=r"^Embedding\(10, 3\): index 12 is out of range "
        r"\(valid indices are 0..9\)$",
    ):
        nn.Embedding(10, 3)(tg.tensor([1, 12]))
    with pytest.raises(
        TypeError,
        match=r"Embedding\(10, 3\): expected integer indices, got "
        r"dtype float32",
    ):
        nn.Embedding(10, 3)(tg.tensor([1.0]))


def test_constructor_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        nn.Conv2d(3, 6, 3, padding_mode="reflect")
    with pytest.raises(
        ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"
    ):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="Linear: in_features must be a positive integer"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU("fast")
    for loss in (
        nn.MSELoss,
        nn.L1Loss,
        nn.HuberLoss,
        nn.CrossEntropyLoss,
        nn.NLLLoss,
        nn.BCELoss,
        nn.BCEWithLogitsLoss,
    ):
        with pytest.raises(
            ValueError,
            match=f"{loss.__name__}: reduction must be one of 'none', 'mean', 'sum', got 'avg'",
        ):
            loss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        nn.CrossEntropyLoss(label_smoothing=2.0)


def test_softmax_requires_dim():
    with pytest.raises(ValueError, match=r"Softmax\(dim=None\): pass the dimension"):
        nn.Softmax()(tg.ones(2, 3))
    with pytest.raises(ValueError, match=r"LogSoftmax\(dim=None\)"):
        nn.LogSoftmax()(tg.ones(2, 3))
    out = nn.Softmax(dim=1)(rand(2, 3))
    np.testing.assert_allclose(out.detach().numpy().sum(1), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------------------
# Train / eval


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.5, generator=np.random.default_rng(0))
    x = tg.ones(200, 100)
    y = drop(x).detach().numpy()
    zeros = (y == 0).mean()
    assert 0.47 < zeros < 0.53
    assert set(np.unique(y)) <= {0.0, 2.0}
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x).detach().numpy(), x.detach().numpy())
    assert nn.Dropout(0.0)(x).detach().numpy().min() == 1.0


def test_dropout_generator_reproducible():
    a = nn.Dropout(0.3, generator=np.random.default_rng(5))(tg.ones(50)).detach().numpy()
    b = nn.Dropout(0.3, generator=np.random.default_rng(5))(tg.ones(50)).detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_batchnorm_running_stats_update_and_eval():
    bn = nn.BatchNorm1d(3, momentum=0.1)
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((16, 3)) * 2 + 1
    x2 = rng.standard_normal((16, 3)) * 3 - 2
    y1 = bn(tg.tensor(x1)).detach().numpy()
    # training output uses batch statistics with the biased variance
    np.testing.assert_allclose(
        y1, (x1 - x1.mean(0)) / np.sqrt(x1.var(0) + 1e-5), rtol=1e-5, atol=1e-6
    )
    bn(tg.tensor(x2))
    rm = 0.9 * (0.9 * 0 + 0.1 * x1.mean(0)) + 0.1 * x2.mean(0)
    rv = 0.9 * (0.9 * 1 + 0.1 * x1.var(0, ddof=1)) + 0.1 * x2.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.detach().numpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.detach().numpy(), rv, rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 2
    bn.eval()
    x3 = rng.standard_normal((4, 3))
    y3 = bn(tg.tensor(x3)).detach().numpy()
    np.testing.assert_allclose(y3, (x3 - rm) / np.sqrt(rv + 1e-5), rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked.item()) == 2
    np.testing.assert_allclose(bn.running_mean.detach().numpy(), rm, rtol=1e-5)


def test_batchnorm_cumulative_average_and_no_tracking():
    bn = nn.BatchNorm2d(2, momentum=None)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((3, 2, 4, 4)) + k for k in range(3)]
    for x in xs:
        bn(tg.tensor(x))
    means = [x.mean((0, 2, 3)) for x in xs]
    np.testing.assert_allclose(bn.running_mean.detach().numpy(), np.mean(means, 0), rtol=1e-5)
    free = nn.BatchNorm1d(2, track_running_stats=False)
    assert list(free.state_dict()) == ["weight", "bias"]
    free.eval()
    x = rng.standard_normal((5, 2))
    np.testing.assert_allclose(
        free(tg.tensor(x)).detach().numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-5
    )


def test_batchnorm_reset_running_stats():
    bn = nn.BatchNorm1d(2)
    bn(rand(4, 2))
    bn.reset_running_stats()
    assert (bn.running_mean.detach().numpy() == 0).all() and (
        bn.running_var.detach().numpy() == 1
    ).all()
    assert bn.num_batches_tracked.item() == 0


# ----------------------------------------------------------------------------------------
# Initialization


@pytest.mark.parametrize(
    "make,fan_in",
    [
        (lambda: nn.Linear(400, 300), 400),
        (lambda: nn.Conv2d(16, 64, 3, groups=2), 8 * 9),
    ],
)
def test_default_init_is_uniform_one_over_sqrt_fan_in(make, fan_in):
    tg.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.detach().numpy().astype(np.float64).ravel()
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    # U(-b, b): mean 0, variance b^2 / 3; n >= 9216 samples give a tight tolerance
    assert abs(w.mean()) < 4 * bound / math.sqrt(3 * w.size)
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.05)
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.5 * bound


def test_default_init_matches_torch_statistics():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Linear(300, 200).weight.detach().numpy()
    ours = nn.Linear(300, 200).weight.detach().numpy()
    assert np.abs(ours).max() <= 1 / math.sqrt(300)
    np.testing.assert_allclose(ours.var(), theirs.var(), rtol=0.05)


def test_weight_init_by_name_and_function_and_generator():
    layer = nn.Linear(
        500,
        400,
        weight_init="kaiming_normal",
        bias_init="zeros",
        generator=np.random.default_rng(0),
    )
    np.testing.assert_allclose(layer.weight.detach().numpy().std(), math.sqrt(2 / 500), rtol=0.03)
    assert (layer.bias.detach().numpy() == 0).all()
    same = nn.Linear(
        500,
        400,
        weight_init="kaiming_normal",
        bias_init="zeros",
        generator=np.random.default_rng(0),
    )
    np.testing.assert_array_equal(layer.weight.detach().numpy(), same.weight.detach().numpy())

    calls = []

    def const(t, generator=None):
        calls.append(t.shape)
        t.data[...] = 0.25
        return t

    conv = nn.Conv2d(
        2, 3, 3, weight_init=const, bias_init=functools.partial(nn.init.constant_, val=-1.0)
    )
    assert calls == [(3, 2, 3, 3)]
    assert (conv.weight.detach().numpy() == 0.25).all() and (conv.bias.detach().numpy() == -1).all()
    conv.weight.data[...] = 0
    conv.reset_parameters()
    assert (conv.weight.detach().numpy() == 0.25).all()


def test_unknown_initializer_name_lists_names():
    with pytest.raises(ValueError, match="unknown initializer 'kaiming'.*kaiming_normal"):
        nn.Linear(2, 2, weight_init="kaiming")


def test_manual_seed_reproducible_layers():
    tg.manual_seed(3)
    a = nn.Linear(5, 4).weight.detach().numpy().copy()
    tg.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(5, 4).weight.detach().numpy())


def test_embedding_init_and_padding():
    tg.manual_seed(0)
    emb = nn.Embedding(2000, 16, padding_idx=0)
    w = emb.weight.detach().numpy()[1:]
    np.testing.assert_allclose(w.std(), 1.0, rtol=0.02)
    assert abs(w.mean()) < 0.02
    assert (emb.weight.detach().numpy()[0] == 0).all()
    out = emb(tg.tensor([[0, 3], [3, 5]]))
    assert out.shape == (2, 2, 16)
    out.sum().backward()
    assert (emb.weight.grad.detach().numpy()[0] == 0).all()
    np.testing.assert_allclose(emb.weight.grad.detach().numpy()[3], 2.0)


def test_normalization_init_and_to_double():
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    assert bn.weight.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert (bn.weight.detach().numpy() == 1).all() and (bn.bias.detach().numpy() == 0).all()
    ln = nn.LayerNorm((2, 3)).double()
    assert ln.weight.shape == (2, 3) and ln.weight.dtype == np.float64
    assert nn.Linear(2, 2).double().weight.dtype == np.float64


# ----------------------------------------------------------------------------------------
# Finite differences (float64)


def _check_module(module, *inputs):
    """gradcheck the module w.r.t. its inputs and all its parameters."""
    module.double()
    params = list(module.parameters())
    n = len(inputs)
    assert gradcheck(lambda *args: module(*args[:n]), tuple(inputs) + tuple(params))


LAYER_CASES = [
    ("linear", lambda: nn.Linear(4, 3), (3, 4)),
    ("linear_3d", lambda: nn.Linear(4, 2, bias=False), (2, 3, 4)),
    ("conv", lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5)),
    (
        "conv_groups_stride",
        lambda: nn.Conv2d(4, 2, (3, 2), stride=2, dilation=1, groups=2),
        (1, 4, 6, 5),
    ),
    ("batchnorm1d", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("batchnorm2d", lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
    ("layernorm", lambda: nn.LayerNorm((2, 3)), (4, 2, 3)),
    ("avgpool", lambda: nn.AvgPool2d(2), (1, 2, 4, 4)),
    ("maxpool", lambda: nn.MaxPool2d(2), (1, 2, 4, 4)),
    ("flatten", lambda: nn.Flatten(), (2, 3, 2)),
    ("identity", lambda: nn.Identity(), (2, 3)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 4)),
    ("tanh", lambda: nn.Tanh(), (3, 4)),
    ("gelu", lambda: nn.GELU(), (3, 4)),
    ("gelu_tanh", lambda: nn.GELU("tanh"), (3, 4)),
    ("silu", lambda: nn.SiLU(), (3, 4)),
    ("elu", lambda: nn.ELU(0.7), (3, 4)),
    ("selu", lambda: nn.SELU(), (3, 4)),
    ("softplus", lambda: nn.Softplus(2.0), (3, 4)),
    ("softmax", lambda: nn.Softmax(dim=1), (3, 4)),
    ("logsoftmax", lambda: nn.LogSoftmax(dim=0), (3, 4)),
    ("relu", lambda: nn.ReLU(), (3, 4)),
    ("leaky_relu", lambda: nn.LeakyReLU(0.1), (3, 4)),
]


@pytest.mark.parametrize("name,make,shape", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_gradients_match_finite_differences(name, make, shape):
    x = rand(*shape, seed=len(name), requires_grad=True)
    if name in ("relu", "leaky_relu", "elu", "selu"):
        # stay away from the kink at 0
        x.detach().numpy()[np.abs(x.detach().numpy()) < 0.05] += 0.2
    _check_module(make(), x)


def test_batchnorm_eval_gradients():
    bn = nn.BatchNorm1d(3)
    bn(rand(6, 3, seed=1))
    bn.eval()
    _check_module(bn, rand(4, 3, seed=2, requires_grad=True))


def test_embedding_gradient():
    emb = nn.Embedding(5, 3).double()
    idx = tg.tensor([[0, 4], [4, 2]])
    assert gradcheck(lambda w: emb(idx), (emb.weight,))


def test_model_gradients_match_finite_differences():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2))
    _check_module(model, rand(3, 3, requires_grad=True))


LOSS_CASES = [
    ("mse", lambda: nn.MSELoss(), "real"),
    ("mse_sum", lambda: nn.MSELoss(reduction="sum"), "real"),
    ("l1", lambda: nn.L1Loss(), "real"),
    ("huber", lambda: nn.HuberLoss(delta=0.5), "real"),
    ("huber_none", lambda: nn.HuberLoss(reduction="none"), "real"),
    ("ce", lambda: nn.CrossEntropyLoss(), "class"),
    (
        "ce_weight_smooth",
        lambda: nn.CrossEntropyLoss(weight=tg.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1),
        "class",
    ),
    ("ce_ignore", lambda: nn.CrossEntropyLoss(ignore_index=1), "class"),
    ("nll", lambda: nn.NLLLoss(), "logprob"),
    ("bce", lambda: nn.BCELoss(), "prob"),
    ("bce_logits", lambda: nn.BCEWithLogitsLoss(pos_weight=tg.tensor([2.0, 1.0, 0.5])), "binary"),
]


def _loss_inputs(kind, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3))
    if kind == "real":
        t = rng.standard_normal((4, 3))
        x = x + np.sign(x - t) * 0.1  # away from the kinks of l1/huber
        return x, t
    if kind in ("class", "logprob"):
        t = np.array([0, 2, 1, 2])
        if kind == "logprob":
            x = x - np.log(np.exp(x).sum(1, keepdims=True))
        return x, t
    if kind == "prob":
        return 1 / (1 + np.exp(-x)), (rng.random((4, 3)) > 0.5).astype(np.float64)
    return x, (rng.random((4, 3)) > 0.5).astype(np.float64)


@pytest.mark.parametrize("name,make,kind", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_gradients_match_finite_differences(name, make, kind):
    x, t = _loss_inputs(kind)
    loss = make().double()
    target = tg.tensor(t)
    assert gradcheck(lambda x: loss(x, target), (tg.tensor(x, requires_grad=True),))


# ----------------------------------------------------------------------------------------
# Values vs PyTorch on the same weights


def _copy_to_torch(torch, ours, theirs):
    theirs.load_state_dict(
        {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in ours.state_dict().items()}
    )


TORCH_LAYERS = [
    ("nn.Linear(4, 3)", (5, 4)),
    ("nn.Conv2d(2, 4, 3, stride=2, padding=1)", (2, 2, 7, 7)),
    ("nn.Conv2d(4, 4, 3, groups=2, dilation=2, padding='same')", (1, 4, 7, 7)),
    ("nn.MaxPool2d(3, 2, 1)", (2, 3, 7, 7)),
    ("nn.AvgPool2d(2)", (2, 3, 6, 6)),
    ("nn.BatchNorm1d(3)", (6, 3)),
    ("nn.BatchNorm1d(3)", (6, 3, 4)),
    ("nn.BatchNorm2d(3)", (4, 3, 2, 2)),
    ("nn.LayerNorm((3, 4))", (2, 3, 4)),
    ("nn.Flatten(0, 1)", (2, 3, 4)),
    ("nn.ReLU()", (3, 4)),
    ("nn.LeakyReLU(0.2)", (3, 4)),
    ("nn.Sigmoid()", (3, 4)),
    ("nn.Tanh()", (3, 4)),
    ("nn.GELU()", (3, 4)),
    ("nn.GELU('tanh')", (3, 4)),
    ("nn.SiLU()", (3, 4)),
    ("nn.ELU(0.5)", (3, 4)),
    ("nn.SELU()", (3, 4)),
    ("nn.Softplus(2.0, 1.0)", (3, 4)),
    ("nn.Softmax(dim=1)", (3, 4)),
    ("nn.LogSoftmax(dim=0)", (3, 4)),
]


@pytest.mark.parametrize("expr,shape", TORCH_LAYERS, ids=[e for e, _ in TORCH_LAYERS])
def test_layer_values_and_gradients_match_torch(expr, shape):
    torch = pytest.importorskip("torch")
    ours = eval(expr, {"nn": nn}).double()
    theirs = eval(expr, {"nn": torch.nn}).double()
    _copy_to_torch(torch, ours, theirs)
    x = np.random.default_rng(7).standard_normal(shape) * 2
    xt = torch.tensor(x, requires_grad=True)
    xo = tg.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(8).standard_normal(yo.shape)
    yt.backward(torch.tensor(g))
    yo.backward(tg.tensor(g))
    np.testing.assert_allclose(xo.grad.detach().numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(
            p.grad.detach().numpy(), q.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name
        )
    for (name, b), (_, c) in zip(ours.named_buffers(), theirs.named_buffers()):
        np.testing.assert_allclose(b.detach().numpy(), c.numpy(), rtol=1e-10, err_msg=name)


def test_batchnorm_eval_matches_torch_after_training_steps():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3).double()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) * 3 + 1
        ours(tg.tensor(x))
        theirs(torch.tensor(x))
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(
        ours(tg.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10
    )


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Embedding(6, 3, padding_idx=2).double()
    theirs = torch.nn.Embedding(6, 3, padding_idx=2).double()
    _copy_to_torch(torch, ours, theirs)
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    yo, yt = ours(tg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy())
    yo.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(ours.weight.grad.detach().numpy(), theirs.weight.grad.numpy())


TORCH_LOSSES = [
    ("nn.MSELoss()", "real"),
    ("nn.MSELoss(reduction='none')", "real"),
    ("nn.L1Loss(reduction='sum')", "real"),
    ("nn.HuberLoss(delta=0.5)", "real"),
    ("nn.CrossEntropyLoss()", "class"),
    ("nn.CrossEntropyLoss(weight=W, label_smoothing=0.2)", "class"),
    ("nn.CrossEntropyLoss(ignore_index=2, reduction='sum')", "class"),
    ("nn.NLLLoss(weight=W)", "logprob"),
    ("nn.BCELoss()", "prob"),
    ("nn.BCELoss(reduction='none')", "prob"),
    ("nn.BCEWithLogitsLoss(pos_weight=W)", "binary"),
]


@pytest.mark.parametrize("expr,kind", TORCH_LOSSES, ids=[e for e, _ in TORCH_LOSSES])
def test_loss_values_and_gradients_match_torch(expr, kind):
    torch = pytest.importorskip("torch")
    w = np.array([1.0, 2.0, 0.5])
    ours = eval(expr, {"nn": nn, "W": tg.tensor(w)}).double()
    theirs = eval(expr, {"nn": torch.nn, "W": torch.tensor(w)})
    x, t = _loss_inputs(kind, seed=3)
    xt = torch.tensor(x, requires_grad=True)
    xo = tg.tensor(x, requires_grad=True)
    yt = theirs(xt, torch.tensor(t))
    yo = ours(xo, tg.tensor(t))
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    yt.sum().backward()
    yo.sum().backward()
    np.testing.assert_allclose(xo.grad.detach().numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_load_torch_convnet_state_dict_and_match_outputs():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchConvNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(1, 4, 3, padding=1)
            self.bn = tnn.BatchNorm2d(4)
            self.pool = tnn.MaxPool2d(2)
            self.flat = tnn.Flatten()
            self.fc1 = tnn.Linear(4 * 4 * 4, 8)
            self.ln = tnn.LayerNorm(8)
            self.drop = tnn.Dropout(0.25)
            self.fc2 = tnn.Linear(8, 3)

        def forward(self, x):
            h = self.pool(torch.relu(self.bn(self.conv(x))))
            return self.fc2(self.drop(tnn.functional.gelu(self.ln(self.fc1(self.flat(h))))))

    theirs = TorchConvNet()
    theirs(torch.randn(8, 1, 8, 8))  # move the running statistics
    theirs.eval()
    ours = ConvNet()
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ours(tg.tensor(x)).detach().numpy(),
        theirs(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


def test_lazy_linear_takes_in_features_from_its_first_input():
    layer = tg.nn.LazyLinear(3, generator=np.random.default_rng(0))
    opt = tg.optim.SGD(layer.parameters(), lr=0.1)  # made before the shapes are known
    assert layer.has_uninitialized_params() and layer.weight.shape == (0,)
    x = tg.randn(5, 4)
    y = layer(x)
    assert y.shape == (5, 3) and layer.weight.shape == (3, 4) and layer.in_features == 4
    bound = 1 / np.sqrt(4)
    assert np.abs(layer.weight.detach().numpy()).max() <= bound
    np.testing.assert_allclose(
        y.detach().numpy(),
        x.numpy() @ layer.weight.detach().numpy().T + layer.bias.detach().numpy(),
        rtol=1e-6,
    )
    before = layer.weight.detach().numpy().copy()
    y.sum().backward()
    opt.step()
    np.testing.assert_allclose(
        layer.weight.detach().numpy(), before - 0.1 * layer.weight.grad.numpy()
    )
