"""models.make_mlp's norm= option: a norm layer after each hidden Linear, before its
activation, the output layer bare; bad values refused."""

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import models, nn


def _kinds(model):
    return [type(m).__name__ for m in model]


@pytest.mark.parametrize(
    "norm, activation, expected",
    [
        (None, "relu", ["Linear", "ReLU", "Linear", "ReLU", "Linear"]),
        ("batch", "relu", ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]),
        ("layer", "tanh", ["Linear", "LayerNorm", "Tanh"] * 2 + ["Linear"]),
        ("batch", "linear", ["Linear", "BatchNorm1d"] * 2 + ["Linear"]),
    ],
)
def test_a_norm_layer_follows_each_hidden_linear(norm, activation, expected):
    m = models.make_mlp(3, 8, activation, in_features=5, out_features=2, norm=norm)
    assert _kinds(m) == expected
    norms = [x for x in m if isinstance(x, (nn.BatchNorm1d, nn.LayerNorm))]
    assert all(tuple(x.weight.shape) == (8,) for x in norms)
    assert [n for n, _ in m.named_children()] == [str(i) for i in range(len(expected))]


def test_the_norm_layers_draw_nothing_from_the_generator():
    plain = models.make_mlp(4, 8, generator=3)
    normed = models.make_mlp(4, 8, generator=3, norm="batch")
    weights = [x.weight._array for x in plain if isinstance(x, nn.Linear)]
    assert len(weights) == 4
    for a, b in zip(weights, [x.weight._array for x in normed if isinstance(x, nn.Linear)]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["group", "Batch", True, 1])
def test_an_unknown_norm_is_a_value_error(bad):
    with pytest.raises(
        ValueError, match=rf"make_mlp: norm must be None, 'batch' or 'layer', got {bad!r}"
    ):
        models.make_mlp(3, 8, norm=bad)


def test_a_batchnorm_mlp_computes_what_torch_computes():
    torch = pytest.importorskip("torch")
    m = models.make_mlp(4, 16, in_features=6, out_features=3, generator=0, norm="batch")
    layers = []
    for x in m:
        if isinstance(x, nn.Linear):
            t = torch.nn.Linear(x.in_features, x.out_features).double()
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(x.weight._array.astype(np.float64)))
                t.bias.copy_(torch.from_numpy(x.bias._array.astype(np.float64)))
            layers.append(t)
        elif isinstance(x, nn.BatchNorm1d):
            layers.append(torch.nn.BatchNorm1d(x.num_features).double())
        else:
            layers.append(torch.nn.ReLU())
    ref = torch.nn.Sequential(*layers)
    xs = np.random.default_rng(1).standard_normal((32, 6))
    got = m(tg.tensor(xs.astype(np.float32)))._array
    want = ref(torch.from_numpy(xs)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
