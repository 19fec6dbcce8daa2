"""Vanishing and exploding gradients: the sigmoid's gradient and products of random
matrices."""

import torch

x = torch.arange(-8.0, 8.0, 0.1, requires_grad=True)
y = torch.sigmoid(x)
y.backward(torch.ones_like(x))
sigmoid_grad = x.grad

M = torch.normal(0, 1, size=(4, 4))
for _ in range(100):
    M = torch.mm(M, torch.normal(0, 1, size=(4, 4)))

z = torch.linspace(-20, 20, 9, dtype=torch.float64, requires_grad=True)
soft = torch.nn.functional.softplus(z)
lse = torch.logsumexp(torch.stack([z, -z]), dim=0)
(soft.sum() + lse.sum()).backward()

RESULT = {
    "exact": {
        "sigmoid_grad": sigmoid_grad.tolist(),
        "max_grad": sigmoid_grad.max().item(),
        "softplus": soft.tolist(),
        "lse": lse.tolist(),
        "z_grad": z.grad.tolist(),
        "finite": bool(torch.isfinite(z.grad).all()),
    },
    # the product of 100 standard normal 4x4 matrices has entries of about 1e25 or more
    "log10_scale": torch.log10(M.abs().max()).item(),
}
