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

from . import init as _init
from . import nn
from .init import get_initializer, zeros_
from .tensor import Tensor

__all__ = [
    "ACTIVATIONS",
    "BRANCH_SCALES",
    "NORMS",
    "make_mlp",
    "make_cnn",
    "make_resnet",
    "make_transformer",
    "TokenTransformer",
    "synthetic_batch",
    "mse",
    "input_shape",
]

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
    norm=None,
):
    """``depth`` Linear layers (``in -> width -> ... -> width -> out``) in an
    ``nn.Sequential``, each but the last followed by ``activation``.

    ``norm``: None, ``'batch'`` (``BatchNorm1d(width)``) or ``'layer'``
    (``LayerNorm(width)``): a normalization layer after each hidden Linear, before its
    activation (Linear, norm, activation, as Ioffe & Szegedy 2015 place BatchNorm); the
    output layer has none.  Modules are named ``'0'``, ``'1'``, ... as PyTorch's
    Sequential names them.
    """
    depth = _positive("depth", depth)
    width = _positive("width", width)
    in_features = _positive("in_features", in_features)
    out_features = _positive("out_features", out_features)
    _check_norm("make_mlp", norm)
    init_fn = get_initializer(init)
    _activation(activation)  # validate before building anything
    gen = _generator(generator)
    layers = []
    fan = in_features
    for i in range(depth):
        out = out_features if i == depth - 1 else width
        layers.append(_init_layer(nn.Linear(fan, out), init_fn, gen))
        if i < depth - 1:
            for m in (_norm(norm, width, "mlp"), _activation(activation)):
                if m is not None:
                    layers.append(m)
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


# Residual-branch schemes of make_resnet: a rule of init.residual_scale, or 'rezero'.
BRANCH_SCALES = ("none", "zero", "sqrt_depth", "gpt2", "fixup", "rezero")
NORMS = (None, "batch", "layer")


def _check_norm(caller, norm):
    if norm not in NORMS:
        raise ValueError(f"{caller}: norm must be None, 'batch' or 'layer', got {norm!r}")


def _norm(norm, width, kind):
    if norm is None:
        return None
    if norm == "batch":
        return nn.BatchNorm2d(width) if kind == "conv" else nn.BatchNorm1d(width)
    if kind == "conv":
        raise ValueError("make_resnet: norm='layer' is for kind='mlp'; use norm='batch' for conv")
    return nn.LayerNorm(width)


def make_resnet(
    depth=20,
    width=32,
    branch_init=None,
    branch_scale="none",
    norm=None,
    activation="relu",
    init="kaiming_normal",
    kind="mlp",
    branch_layers=2,
    in_features=32,
    out_features=10,
    in_channels=3,
    image_size=8,
    kernel_size=3,
    generator=None,
):
    """A residual network: a stem layer, ``depth`` residual blocks and a Linear head.

    Each block is ``nn.Residual`` of a pre-activation branch (He et al. 2016, "Identity
    mappings in deep residual networks") of ``branch_layers`` weighted layers::

        x + W_m act(norm(... W_1 act(norm(x))))

    ``kind='mlp'``: Linear(in_features, width) stem, Linear(width, width) branch layers;
    ``kind='conv'``: Conv2d(in_channels, width, kernel_size, same padding) stem and conv
    branch layers, then Flatten and a Linear head (images keep ``image_size``).
    ``norm``: None, ``'batch'`` (BatchNorm) or ``'layer'`` (LayerNorm, mlp only) before
    each activation of a branch.

    ``init`` initialises the stem and the head, ``branch_init`` (default: ``init``) every
    branch layer, both by registry name or function as in :func:`make_mlp`, biases 0.
    ``branch_scale`` then rescales the branches: a number multiplies each branch's last
    layer; ``'none'``, ``'zero'`` (torchvision's zero_init_residual), ``'sqrt_depth'``
    (1 / sqrt(depth)), ``'gpt2'`` (1 / sqrt(2 depth)) apply
    :func:`~tinygrad_init.init.scale_residual_branches_`; ``'fixup'`` appends Fixup's scalar
    multiplier (an ``nn.ResidualGate``) to each branch and applies
    :func:`~tinygrad_init.init.fixup_`; ``'rezero'`` appends an ``nn.ResidualGate`` with
    alpha = 0 (ReZero / SkipInit).
    """
    depth = _positive("depth", depth)
    width = _positive("width", width)
    branch_layers = _positive("branch_layers", branch_layers)
    out_features = _positive("out_features", out_features)
    if kind not in ("mlp", "conv"):
        raise ValueError(f"make_resnet: kind must be 'mlp' or 'conv', got {kind!r}")
    _check_norm("make_resnet", norm)
    numeric = isinstance(branch_scale, (int, float, np.floating)) and not isinstance(
        branch_scale, bool
    )
    if not numeric and branch_scale not in BRANCH_SCALES:
        raise ValueError(
            f"make_resnet: branch_scale must be a number or one of "
            f"{', '.join(map(repr, BRANCH_SCALES))}, got {branch_scale!r}"
        )
    if branch_scale == "fixup" and branch_layers < 2:
        raise ValueError("make_resnet: Fixup needs branch_layers >= 2")
    init_fn = get_initializer(init)
    branch_fn = init_fn if branch_init is None else get_initializer(branch_init)
    _activation(activation)
    _norm(norm, width, kind)
    gen = _generator(generator)
    if kind == "conv":
        in_channels = _positive("in_channels", in_channels)
        image_size = _positive("image_size", image_size)
        kernel_size = _positive("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")

        def layer(fan_in):
            return nn.Conv2d(fan_in, width, kernel_size, padding=kernel_size // 2)

        stem_in = in_channels
    else:

        def layer(fan_in):
            return nn.Linear(fan_in, width)

        stem_in = _positive("in_features", in_features)
    blocks = [_init_layer(layer(stem_in), init_fn, gen)]
    for _ in range(depth):
        parts = []
        for _ in range(branch_layers):
            for m in (_norm(norm, width, kind), _activation(activation)):
                if m is not None:
                    parts.append(m)
            parts.append(_init_layer(layer(width), branch_fn, gen))
        if branch_scale in ("fixup", "rezero"):
            parts.append(nn.ResidualGate(1.0 if branch_scale == "fixup" else 0.0))
        blocks.append(nn.Residual(nn.Sequential(*parts)))
    if kind == "conv":
        blocks.append(nn.Flatten())
        head = nn.Linear(width * image_size * image_size, out_features)
    else:
        head = nn.Linear(width, out_features)
    blocks.append(_init_layer(head, init_fn, gen))
    model = nn.Sequential(*blocks)
    if numeric:
        for block in blocks[1 : depth + 1]:
            last = [m for m in block.branch.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
            last[-1].weight._array *= np.asarray(branch_scale, last[-1].weight.dtype)
    elif branch_scale == "fixup":
        _init.fixup_(model, classifier=head)
    elif branch_scale != "rezero":
        _init.scale_residual_branches_(model, branch_scale)
    return model


class TokenTransformer(nn.Module):
    """Token and learned position embeddings, a ``TransformerEncoder`` and a Linear head:
    integer tokens (N, L) -> logits (N, L, vocab_size).  Pre-LN stacks end with a final
    LayerNorm (``encoder.norm``), as GPT-2 does."""

    def __init__(self, embed, pos, encoder, head, causal):
        super().__init__()
        self.embed, self.pos, self.encoder, self.head = embed, pos, encoder, head
        self.causal = causal

    def forward(self, tokens):
        length = tokens.shape[-1]
        positions = Tensor(np.arange(length))
        x = self.embed(tokens) + self.pos(positions)
        mask = None
        if self.causal:
            mask = ~np.tri(length, length, dtype=bool)
        return self.head(self.encoder(x, mask=mask, is_causal=self.causal or None))


def make_transformer(
    depth=4,
    d_model=32,
    heads=4,
    norm_first=True,
    residual_scale="none",
    dim_feedforward=None,
    activation="gelu",
    dropout=0.0,
    init=None,
    vocab_size=16,
    max_len=32,
    causal=False,
    generator=None,
):
    """A :class:`TokenTransformer` of ``depth`` ``nn.TransformerEncoderLayer`` (batch
    first, ``heads`` heads, feed-forward width ``dim_feedforward`` = 4 d_model by default).

    ``init=None`` keeps PyTorch's layer defaults (xavier_uniform in-projections, zero
    attention biases, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) Linear weights, N(0, 1)
    embeddings); a registry name or function is applied to every weight matrix and
    embedding instead, biases 0, as in :func:`make_mlp`.  Each layer is drawn on its own
    (PyTorch's ``TransformerEncoder`` would copy one).  ``residual_scale``: a number that
    multiplies the last layer of every residual branch (attention ``out_proj``,
    ``linear2``), or a rule of :func:`~tinygrad_init.init.residual_scale` (``'none'``,
    ``'zero'``, ``'sqrt_depth'``, ``'gpt2'`` = 1 / sqrt(2 depth), GPT-2's scheme).
    ``causal=True`` masks attention to later positions.
    """
    depth = _positive("depth", depth)
    d_model = _positive("d_model", d_model)
    heads = _positive("heads", heads)
    vocab_size = _positive("vocab_size", vocab_size)
    max_len = _positive("max_len", max_len)
    dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
    dim_feedforward = _positive("dim_feedforward", dim_feedforward)
    if d_model % heads:
        raise ValueError(
            f"make_transformer: d_model ({d_model}) must be divisible by heads ({heads})"
        )
    numeric = isinstance(residual_scale, (int, float, np.floating)) and not isinstance(
        residual_scale, bool
    )
    rules = ("none", "zero", "sqrt_depth", "gpt2")
    if not numeric and residual_scale not in rules:
        raise ValueError(
            f"make_transformer: residual_scale must be a number or one of "
            f"{', '.join(map(repr, rules))}, got {residual_scale!r}"
        )
    init_fn = None if init is None else get_initializer(init)
    gen = _generator(generator)

    def layer():
        return nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward,
            dropout,
            activation,
            batch_first=True,
            norm_first=norm_first,
            generator=gen,
        )

    encoder = nn.TransformerEncoder(layer(), 1, norm=nn.LayerNorm(d_model) if norm_first else None)
    encoder.layers = nn.ModuleList([layer() for _ in range(depth)])
    encoder.num_layers = depth
    embed = nn.Embedding(vocab_size, d_model, generator=gen)
    pos = nn.Embedding(max_len, d_model, generator=gen)
    head = nn.Linear(d_model, vocab_size, generator=gen)
    model = TokenTransformer(embed, pos, encoder, head, bool(causal))
    if init_fn is not None:
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                init_fn(p, generator=gen)
            elif name.endswith("bias"):
                zeros_(p)
    if numeric:
        for block in encoder.layers:
            for w in (block.self_attn.out_proj.weight, block.linear2.weight):
                w._array *= np.asarray(residual_scale, w.dtype)
    else:
        _init.scale_residual_branches_(model, residual_scale)
    return model


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
