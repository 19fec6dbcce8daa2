"""Model specs for experiments on initialization: deep MLPs and CNNs, and synthetic batches.

    model = make_mlp(depth=30, width=32, activation="sigmoid", init="normal")
    x, y = synthetic_batch(model)          # shapes taken from the model
    loss = mse(model(x), y)

``init`` is a registry name of :mod:`tinygrad_init.init` (``'normal'``,
``'xavier_normal'``, ``'kaiming_normal'``, ``'he_normal'``, ``'lecun_normal'``,
``'orthogonal'``, ...) or a function ``fn(tensor, generator=None)``; it is applied with its
defaults (``kaiming_normal`` uses gain sqrt(2), ``xavier_normal`` gain 1, ``normal`` is
N(0, 1)) to every weight, and biases start at 0.  The same ``generator`` (or seed) gives
the same model.
"""

from __future__ import annotations

import numpy as np

from . import nn
from .init import get_initializer, zeros_
from .tensor import Tensor

__all__ = ["ACTIVATIONS", "make_mlp", "make_cnn", "synthetic_batch", "mse", "input_shape"]

# Activation names accepted by the builders -> nn module class name.
ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
    "selu": "SELU",
    "softplus": "Softplus",
    "linear": None,
    "identity": None,
}


def _activation(name):
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    cls_name = ACTIVATIONS[name.lower()]
    if cls_name is None:
        return None
    cls = getattr(nn, cls_name, None)
    if cls is None:
        raise ValueError(f"activation {name!r} needs nn.{cls_name}, which this version lacks")
    return cls()


def _generator(generator):
    if generator is None or isinstance(generator, np.random.Generator):
        return generator if generator is not None else np.random.default_rng(0)
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"generator must be a np.random.Generator or an int seed, got {type(generator).__name__}"
    )


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _init_layer(layer, init_fn, gen):
    init_fn(layer.weight, generator=gen)
    if getattr(layer, "bias", None) is not None:
        zeros_(layer.bias)
    return layer


def make_mlp(
    depth=10,
    width=32,
    activation="relu",
    init="kaiming_normal",
    in_features=32,
    out_features=10,
    generator=None,
):
    """``depth`` Linear layers (``in -> width -> ... -> width -> out``) in an
    ``nn.Sequential``, each but the last followed by ``activation``.

    Modules are named ``'0'``, ``'1'``, ... as PyTorch's Sequential names them.
    """
    depth = _positive("depth", depth)
    width = _positive("width", width)
    in_features = _positive("in_features", in_features)
    out_features = _positive("out_features", out_features)
    init_fn = get_initializer(init)
    _activation(activation)  # validate before building anything
    gen = _generator(generator)
    layers = []
    fan = in_features
    for i in range(depth):
        out = out_features if i == depth - 1 else width
        layers.append(_init_layer(nn.Linear(fan, out), init_fn, gen))
        if i < depth - 1:
            act = _activation(activation)
            if act is not None:
                layers.append(act)
        fan = out
    return nn.Sequential(*layers)


def make_cnn(
    depth=6,
    channels=8,
    activation="relu",
    init="kaiming_normal",
    in_channels=3,
    image_size=8,
    out_features=10,
    kernel_size=3,
    generator=None,
):
    """``depth`` Conv2d layers (``kernel_size``, stride 1, same padding), each followed by
    ``activation``, then ``Flatten`` and a Linear head to ``out_features``.

    Images keep their ``image_size x image_size`` size, so every conv has the same fans.
    """
    depth = _positive("depth", depth)
    channels = _positive("channels", channels)
    in_channels = _positive("in_channels", in_channels)
    image_size = _positive("image_size", image_size)
    out_features = _positive("out_features", out_features)
    kernel_size = _positive("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
    init_fn = get_initializer(init)
    _activation(activation)
    gen = _generator(generator)
    layers = []
    c = in_channels
    for _ in range(depth):
        layers.append(
            _init_layer(nn.Conv2d(c, channels, kernel_size, padding=kernel_size // 2), init_fn, gen)
        )
        act = _activation(activation)
        if act is not None:
            layers.append(act)
        c = channels
    layers.append(nn.Flatten())
    layers.append(
        _init_layer(nn.Linear(channels * image_size * image_size, out_features), init_fn, gen)
    )
    return nn.Sequential(*layers)


def input_shape(model, batch=64, image_size=8):
    """The input shape the first layer of ``model`` expects: ``(batch, in_features)`` for a
    Linear, ``(batch, in_channels, image_size, image_size)`` for a Conv2d."""
    for m in model.modules():
        w = getattr(m, "_parameters", {}).get("weight")
        if isinstance(w, Tensor) and w.ndim == 2:
            return (batch, w.shape[1])
        if isinstance(w, Tensor) and w.ndim == 4:
            return (batch, w.shape[1], image_size, image_size)
    raise ValueError(
        f"cannot tell the input shape of {type(model).__name__}: it has no "
        "Linear or Conv2d layer; pass the batch yourself"
    )


def synthetic_batch(
    model=None, batch=64, shape=None, out_features=None, image_size=8, generator=None
):
    """A batch ``(x, y)``: inputs ``x ~ N(0, 1)`` and regression targets ``y ~ N(0, 1)``.

    The input shape is ``shape`` (without the batch dim) or read from ``model``'s first
    layer; the target has the model's output width (or ``out_features``).  Nothing in it
    requires grad.
    """
    batch = _positive("batch", batch)
    gen = _generator(generator)
    if shape is not None:
        xshape = (batch, *tuple(int(n) for n in shape))
    elif model is not None:
        xshape = input_shape(model, batch, image_size)
    else:
        raise ValueError("synthetic_batch: pass a model or an input shape")
    if out_features is None:
        out_features = _output_width(model) if model is not None else 1
    x = Tensor(gen.standard_normal(xshape).astype(np.float32))
    y = Tensor(gen.standard_normal((batch, out_features)).astype(np.float32))
    return x, y


def _output_width(model):
    last = None
    for m in model.modules():
        w = getattr(m, "_parameters", {}).get("weight")
        if isinstance(w, Tensor) and w.ndim >= 2:
            last = w
    if last is None:
        raise ValueError(f"cannot tell the output width of {type(model).__name__}")
    return last.shape[0]


def mse(output, target):
    """Mean squared error ``mean((output - target)^2)`` (``F.mse_loss`` with 'mean')."""
    diff = output - target
    return (diff * diff).mean()
