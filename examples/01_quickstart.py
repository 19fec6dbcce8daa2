"""Quick start: tensors, the recorded graph, backward() and tg.grad().

Run:  python examples/01_quickstart.py
"""

import numpy as np

import tinygrad_init as tg

# A tensor that requires grad is a leaf of the graph; every operation on it is recorded.
x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
w = tg.tensor([0.5, -1.0], requires_grad=True)
y = (x * w).tanh().sum()
print("y =", y.item(), " grad_fn:", y.grad_fn)

# backward() fills .grad of every leaf: dy/dx = w * (1 - tanh^2), dy/dw = sum_rows x * (...)
y.backward()
print("dy/dx =\n", x.grad.numpy())
print("dy/dw =", w.grad.numpy())


# Check one entry with a central difference: (f(x + eps) - f(x - eps)) / (2 eps).
def f(values):
    return np.tanh(values * w.detach().numpy()).sum()


eps = 1e-3
plus, minus = x.detach().numpy().copy(), x.detach().numpy().copy()
plus[0, 1] += eps
minus[0, 1] -= eps
print(
    "finite difference for dy/dx[0,1]:",
    (f(plus) - f(minus)) / (2 * eps),
    " autograd:",
    x.grad.detach().numpy()[0, 1],
)

# Gradients of gradients: create_graph=True records the backward pass itself.
t = tg.tensor(0.7, requires_grad=True)
(first,) = tg.grad(t.sigmoid(), t, create_graph=True)
(second,) = tg.grad(first, t)
s = 1 / (1 + np.exp(-0.7))
print(
    f"sigmoid'(0.7) = {first.item():.6f} (exact {s * (1 - s):.6f}); "
    f"sigmoid''(0.7) = {second.item():.6f} (exact {s * (1 - s) * (1 - 2 * s):.6f})"
)

# Nothing is recorded under no_grad: the result has no grad_fn.
with tg.no_grad():
    z = x * 2
print("recorded under no_grad?", z.grad_fn is not None)
