"""Hooks: tensor hooks, retain_grad, forward hooks and full backward hooks on modules."""

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(1)
model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))

activations = {}
grads = {}


def save_activation(name):
    def hook(module, inputs, output):
        activations[name] = output.detach()

    return hook


def save_grad(name):
    def hook(module, grad_input, grad_output):
        grads[name] = grad_output[0].detach()

    return hook


handles = []
for name, module in model.named_modules():
    if isinstance(module, nn.Linear):
        handles.append(module.register_forward_hook(save_activation(name)))
        handles.append(module.register_full_backward_hook(save_grad(name)))

x = torch.tensor(rng.standard_normal((5, 4)), requires_grad=True)
hidden = model[0](x)
hidden.retain_grad()
seen = []
hidden.register_hook(lambda g: seen.append(g.abs().sum().item()))
out = model[2](model[1](hidden))
x.register_hook(lambda g: g * 2)
out.pow(2).sum().backward()
for h in handles:
    h.remove()
model(x)

RESULT = {
    "exact": {
        "act0": activations["0"].tolist(),
        "act2": activations["2"].tolist(),
        "grad_out2": grads["2"].tolist(),
        "hidden_grad": hidden.grad.tolist(),
        "seen": seen,
        "x_grad": x.grad.tolist(),
        "n_activations": len(activations),
    }
}
