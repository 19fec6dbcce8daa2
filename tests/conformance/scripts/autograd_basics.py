"""Autograd: requires_grad, backward, torch.autograd.grad, no_grad, detach, a custom
Function, and a walk over grad_fn.next_functions."""

import numpy as np
import torch

rng = np.random.default_rng(0)
x = torch.ones(5)
y = torch.zeros(3)
w = torch.tensor(rng.standard_normal((5, 3)), dtype=torch.float32, requires_grad=True)
b = torch.tensor(rng.standard_normal(3), dtype=torch.float32, requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
loss.backward()


def graph_names(fn, seen=None):
    """Names of the nodes reachable from fn, depth first."""
    seen = [] if seen is None else seen
    if fn is None:
        return seen
    seen.append(type(fn).__name__ if not hasattr(fn, "name") else fn.name())
    for nxt, _ in fn.next_functions:
        graph_names(nxt, seen)
    return seen


walk = graph_names(loss.grad_fn)

with torch.no_grad():
    z2 = torch.matmul(x, w) + b
z_det = z.detach()

a = torch.tensor([2.0, 3.0], requires_grad=True, dtype=torch.float64)
q = 3 * a**3 - a**2
(ga,) = torch.autograd.grad(q.sum(), a, create_graph=True)
(gga,) = torch.autograd.grad(ga.sum(), a)


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input**3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input**2 - 1)


p = torch.tensor(rng.uniform(-1, 1, 6), dtype=torch.float64, requires_grad=True)
P3 = LegendrePolynomial3.apply
out = P3(p).sum()
out.backward()

RESULT = {
    "exact": {
        "loss": loss.item(),
        "w_grad": w.grad.tolist(),
        "b_grad": b.grad.tolist(),
        "z2_requires_grad": z2.requires_grad,
        "z_det_requires_grad": z_det.requires_grad,
        "walk_leaves": sum(name == "AccumulateGrad" for name in walk),
        "ga": ga.tolist(),
        "gga": gga.tolist(),
        "p_grad": p.grad.tolist(),
        "out": out.item(),
    }
}
