"""Fit y = sin(x) with a cubic a + b x + c x^2 + d x^3: an nn model trained by a manual
gradient step, then the same with an optimizer."""

import math

import torch

x = torch.linspace(-math.pi, math.pi, 2000, dtype=torch.float64)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1)).double()
with torch.no_grad():
    model[0].weight.zero_()
    model[0].bias.zero_()
loss_fn = torch.nn.MSELoss(reduction="sum")

learning_rate = 1e-6
for _step in range(2000):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad
manual_loss = loss.item()

model2 = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1)).to(torch.double)
torch.nn.init.zeros_(model2[0].weight)
torch.nn.init.zeros_(model2[0].bias)
optimizer = torch.optim.RMSprop(model2.parameters(), lr=1e-3)
for _step in range(500):
    loss2 = loss_fn(model2(xx), y)
    optimizer.zero_grad()
    loss2.backward()
    optimizer.step()

linear_layer = model[0]
RESULT = {
    "exact": {
        "manual_loss": manual_loss,
        "weight": linear_layer.weight.tolist(),
        "bias": linear_layer.bias.item(),
    },
    "loss": manual_loss,
    # zero weights on an odd target make some gradients ~1e-13 of either sign, which
    # RMSprop scales to full steps: this loss is compared within a tolerance only
    "rmsprop_loss": loss2.item(),
}
