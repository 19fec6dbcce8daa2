"""Scalar expressions whose gradients a tiny autograd engine is usually checked against."""

import torch

x = torch.Tensor([-4.0]).double()
x.requires_grad = True
z = 2 * x + 2 + x
q = z.relu() + z * x
h = (z * z).relu()
y = h + q + q * x
y.backward()
xpt, ypt = x, y

a = torch.Tensor([-4.0]).double()
b = torch.Tensor([2.0]).double()
a.requires_grad = True
b.requires_grad = True
c = a + b
d = a * b + b**3
c = c + c + 1
c = c + 1 + c + (-a)
d = d + d * 2 + (b + a).relu()
d = d + 3 * d + (b - a).relu()
e = c - d
f = e**2
g = f / 2.0
g = g + 10.0 / f
g.backward()

RESULT = {
    "exact": {
        "y": ypt.data.item(),
        "x_grad": xpt.grad.item(),
        "g": g.data.item(),
        "a_grad": a.grad.item(),
        "b_grad": b.grad.item(),
    }
}
