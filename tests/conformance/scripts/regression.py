"""Fit a random degree-4 polynomial with one linear layer on polynomial features, updating
parameters through .data as older examples do."""

import torch
import torch.nn.functional as F

POLY_DEGREE = 4
torch.manual_seed(0)
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x):
    x = x.unsqueeze(1)
    return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    return x.mm(W_target) + b_target.item()


def get_batch(batch_size=32):
    random = torch.randn(batch_size)
    x = make_features(random)
    return x, f(x)


fc = torch.nn.Linear(W_target.size(0), 1)
for _batch in range(1, 2000):
    batch_x, batch_y = get_batch()
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    output.backward()
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)
    if loss < 1e-3:
        break

x = torch.tensor([[0.5, 0.25, 0.125, 0.0625]], requires_grad=True)
g = torch.nn.Linear(4, 1)
with torch.no_grad():
    g.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0]]))
    g.bias.fill_(0.5)
F.smooth_l1_loss(g(x), torch.tensor([[3.0]])).backward()

RESULT = {
    "exact": {"x_grad": x.grad.tolist(), "w_grad": g.weight.grad.tolist()},
    "loss": loss,
    "weight_error": (fc.weight.data.view(-1) - W_target.view(-1)).abs().max().item(),
}
