"""Hand-written numpy training steps: the floor that tinygrad_init's overhead is measured against.

Each model here is the same network as the framework version in ``tools/bench.py``, with
its forward *and* backward pass derived by hand and written directly in numpy: no graph,
no tape, no generic gradient rules.  Whatever a framework spends beyond these functions is
overhead it chose.  The code is written the way a careful person would write it by hand
(float32 throughout, in-place updates where they are obviously safe), but not tuned beyond
that.

Conventions shared with PyTorch, so the gradients can be compared entry by entry:

* Linear: ``y = x @ W.T + b`` with ``W`` of shape ``(out_features, in_features)``.
* Cross-entropy: mean over the batch of ``logsumexp(z) - z[label]``; its gradient with
  respect to the logits is ``(softmax(z) - onehot(label)) / N``.
* Mean squared error: ``mean((z - y)^2)`` over every entry; its gradient with respect to
  ``z`` is ``2 (z - y) / z.size`` (PyTorch's ``MSELoss``, reduction ``'mean'``).
* relu'(0) = 0; tanh' = 1 - tanh^2.
* Conv2d: weight ``(out, in, kh, kw)``, stride 1, no padding (cross-correlation).
* MaxPool2d(2): windows that do not fit are dropped (floor), the gradient goes to the
  first maximum of each window (row-major order within the window).
* SGD: ``p -= lr * grad``.

Parameters are kept as a flat list ``[W1, b1, W2, b2, ...]`` in the order a PyTorch
``Sequential`` lists its parameters; ``gradients`` returns grads in the same order.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "MLP",
    "CNN",
    "Chain",
    "CHAIN_OPS",
    "chain_ops",
    "softmax_cross_entropy",
    "mean_squared_error",
]


def softmax_cross_entropy(z, labels):
    """Mean cross-entropy of logits ``z`` (N, C) and the gradient with respect to ``z``.

    loss = mean_i(logsumexp(z_i) - z_i[y_i]);  dL/dz = (softmax(z) - onehot(y)) / N.
    """
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = np.mean(np.log(s[:, 0]) - shifted[rows, labels])
    e /= s
    e[rows, labels] -= 1
    e /= n
    return loss, e


def mean_squared_error(z, target):
    """Mean squared error of ``z`` against ``target`` (same shape) and its gradient.

    loss = mean((z - target)^2);  dL/dz = 2 (z - target) / z.size.
    """
    d = z - target
    loss = np.mean(d * d)
    d *= 2.0 / d.size
    return loss, d


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}


class MLP:
    """Linear layers with relu or tanh between them, a loss, plain SGD.

    ``params`` is ``[W1, b1, W2, b2, ...]`` (copied); the last layer has no activation.
    ``loss`` is ``'cross_entropy'`` (integer labels) or ``'mse'`` (a float target of the
    output's shape).
    """

    def __init__(self, params, activation, lr, loss="cross_entropy"):
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.loss = LOSSES[loss]
        self.params = [np.array(p, dtype=np.float32) for p in params]
        self.activation = activation
        self.lr = lr

    def _layers(self):
        return [(self.params[i], self.params[i + 1]) for i in range(0, len(self.params), 2)]

    def forward(self, x):
        """Logits for ``x``; nothing is kept for backward (inference)."""
        layers = self._layers()
        h = x
        for k, (w, b) in enumerate(layers):
            h = h @ w.T
            h += b
            if k < len(layers) - 1:
                if self.activation == "relu":
                    np.maximum(h, 0, out=h)
                else:
                    np.tanh(h, out=h)
        return h

    def gradients(self, x, labels):
        """Loss and the gradient of every parameter, in the order of ``params``."""
        layers = self._layers()
        hs = [x]  # the input of each layer (post-activation of the previous one)
        h = x
        for k, (w, b) in enumerate(layers):
            h = h @ w.T
            h += b
            if k < len(layers) - 1:
                if self.activation == "relu":
                    np.maximum(h, 0, out=h)
                else:
                    np.tanh(h, out=h)
                hs.append(h)
        loss, dz = self.loss(h, labels)

        grads = [None] * len(self.params)
        for k in range(len(layers) - 1, -1, -1):
            w, _ = layers[k]
            h_in = hs[k]
            grads[2 * k] = dz.T @ h_in
            grads[2 * k + 1] = dz.sum(axis=0)
            if k == 0:
                break
            dh = dz @ w
            if self.activation == "relu":
                dh *= h_in > 0  # relu output > 0 exactly where its input was > 0
            else:
                dh *= 1 - h_in * h_in  # tanh' from the tanh output
            dz = dh
        return loss, grads

    def step(self, x, labels):
        """One training step: forward, loss, backward, SGD update.  Returns the loss."""
        loss, grads = self.gradients(x, labels)
        for p, g in zip(self.params, grads):
            g *= self.lr
            p -= g
        return loss


# ----------------------------------------------------------------------------------------
# The convolutional network


def _im2col(x, k):
    """Patches of an NHWC batch: (N*Ho*Wo, C*k*k) in the (C, kh, kw) order of a weight."""
    n, h, w, c = x.shape
    ho, wo = h - k + 1, w - k + 1
    windows = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, Ho, Wo, C, k, k), a view
    return windows.reshape(n * ho * wo, c * k * k), (n, ho, wo)


def _col2im(dcols, shape, k):
    """Adjoint of ``_im2col``: sum the patch gradients back onto an NHWC batch of ``shape``."""
    n, h, w, c = shape
    ho, wo = h - k + 1, w - k + 1
    d = dcols.reshape(n, ho, wo, c, k, k)
    dx = np.zeros(shape, dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i : i + ho, j : j + wo, :] += d[:, :, :, :, i, j]
    return dx


def _maxpool2_forward(x):
    """2x2 max pool with stride 2 on NHWC (floor); returns the output and the argmax."""
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    win = x[:, : 2 * ho, : 2 * wo, :].reshape(n, ho, 2, wo, 2, c)
    win = win.transpose(0, 1, 3, 5, 2, 4).reshape(n, ho, wo, c, 4)
    arg = win.argmax(axis=-1)
    out = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return out, arg


def _maxpool2_backward(g, arg, shape):
    """Route each output gradient to the first maximum of its window."""
    n, h, w, c = shape
    _, ho, wo, _ = g.shape
    win = np.zeros((n, ho, wo, c, 4), dtype=g.dtype)
    np.put_along_axis(win, arg[..., None], g[..., None], axis=-1)
    dx = np.zeros(shape, dtype=g.dtype)
    dx[:, : 2 * ho, : 2 * wo, :] = (
        win.reshape(n, ho, wo, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, 2 * ho, 2 * wo, c)
    )
    return dx


class CNN:
    """conv3x3(1->8), relu, maxpool2, conv3x3(8->16), relu, maxpool2, flatten, linear->10.

    Inputs arrive in NCHW (as for PyTorch); inside, activations are kept in NHWC so that
    each convolution is one im2col copy and one matrix product.  The flatten uses NCHW
    order, so the linear weight is the one PyTorch would have.
    ``params`` = [conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc.weight, fc.bias].
    """

    def __init__(self, params, lr):
        self.params = [np.array(p, dtype=np.float32) for p in params]
        self.lr = lr

    @staticmethod
    def _conv(x, w, b):
        """NHWC convolution, valid padding: returns the output and the im2col matrix."""
        k = w.shape[-1]
        cols, (n, ho, wo) = _im2col(x, k)
        out = cols @ w.reshape(w.shape[0], -1).T
        out += b
        return out.reshape(n, ho, wo, w.shape[0]), cols

    def _forward(self, x_nchw):
        w1, b1, w2, b2, w3, b3 = self.params
        x = x_nchw.transpose(0, 2, 3, 1)
        z1, cols1 = self._conv(x, w1, b1)
        np.maximum(z1, 0, out=z1)
        p1, arg1 = _maxpool2_forward(z1)
        z2, cols2 = self._conv(p1, w2, b2)
        np.maximum(z2, 0, out=z2)
        p2, arg2 = _maxpool2_forward(z2)
        flat = p2.transpose(0, 3, 1, 2).reshape(p2.shape[0], -1)  # NCHW flatten order
        logits = flat @ w3.T
        logits += b3
        return logits, (cols1, z1, arg1, p1, cols2, z2, arg2, p2, flat)

    def forward(self, x):
        return self._forward(x)[0]

    def gradients(self, x, labels):
        w1, b1, w2, b2, w3, b3 = self.params
        logits, (cols1, z1, arg1, p1, cols2, z2, arg2, p2, flat) = self._forward(x)
        loss, dlogits = softmax_cross_entropy(logits, labels)

        gw3 = dlogits.T @ flat
        gb3 = dlogits.sum(axis=0)
        n, ho, wo, c = p2.shape
        dp2 = (dlogits @ w3).reshape(n, c, ho, wo).transpose(0, 2, 3, 1)

        dz2 = _maxpool2_backward(dp2, arg2, z2.shape)
        dz2 *= z2 > 0
        dz2m = dz2.reshape(-1, dz2.shape[-1])
        gw2 = (dz2m.T @ cols2).reshape(w2.shape)
        gb2 = dz2m.sum(axis=0)
        dp1 = _col2im(dz2m @ w2.reshape(w2.shape[0], -1), p1.shape, w2.shape[-1])

        dz1 = _maxpool2_backward(dp1, arg1, z1.shape)
        dz1 *= z1 > 0
        dz1m = dz1.reshape(-1, dz1.shape[-1])
        gw1 = (dz1m.T @ cols1).reshape(w1.shape)
        gb1 = dz1m.sum(axis=0)
        return loss, [gw1, gb1, gw2, gb2, gw3, gb3]

    def step(self, x, labels):
        loss, grads = self.gradients(x, labels)
        for p, g in zip(self.params, grads):
            g *= self.lr
            p -= g
        return loss


# ----------------------------------------------------------------------------------------
# A long chain of elementwise operations


CHAIN_OPS = (("mul", 1.25), ("add", 0.001), ("mul", 0.8), ("add", -0.001))
"""The repeating cycle of the chain workload: y = y * 1.25 + 0.001, then * 0.8 - 0.001."""


class Chain:
    """``n_ops`` elementwise ops on a small vector, then ``sum``; forward and backward.

    By hand the backward of ``y * c`` is ``g * c`` and of ``y + c`` is ``g``: one numpy
    call per op forward and at most one per op backward, which is the least any tape can do.
    """

    def __init__(self, n_ops):
        self.ops = chain_ops(n_ops)

    def gradients(self, x):
        y = x
        for kind, c in self.ops:
            y = y * c if kind == "mul" else y + c
        loss = y.sum()
        g = np.ones_like(x)
        for kind, c in reversed(self.ops):
            if kind == "mul":
                g = g * c
        return loss, [g]

    def step(self, x):
        return self.gradients(x)[0]


def chain_ops(n_ops):
    """The first ``n_ops`` entries of the repeating ``CHAIN_OPS`` cycle, as a list."""
    return [CHAIN_OPS[k % len(CHAIN_OPS)] for k in range(n_ops)]
