"""Zero weights keep hidden units identical forever; zero biases alone are harmless.

With every weight equal, every hidden unit of a layer computes the same function, receives
the same gradient and takes the same step: the layer behaves like a single unit however
wide it is.  Random weights break that symmetry; the biases may then start at zero.

Run:  python examples/04_zero_init_symmetry.py [--quick]
"""

import sys

import numpy as np

import tinygrad_init as tg
from tinygrad_init import data, nn, optim

steps = 50 if "--quick" in sys.argv else 400
x, y = data.spirals(300, classes=3, generator=np.random.default_rng(0))


def train(weight_init):
    tg.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 32, weight_init=weight_init, bias_init="zeros"),
        nn.Tanh(),
        nn.Linear(32, 32, weight_init=weight_init, bias_init="zeros"),
        nn.Tanh(),
        nn.Linear(32, 3, weight_init=weight_init, bias_init="zeros"),
    )
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    return model, loss.item(), accuracy


def distinct_units(weight):
    """Number of distinct rows (hidden units) of a weight matrix, to 1e-6."""
    return len(np.unique(np.round(weight.detach().numpy(), 6), axis=0))


for name in ("zeros", "xavier_uniform"):
    model, loss, accuracy = train(name)
    hidden = model[2].weight
    print(
        f"{name:>15}: loss {loss:.3f}  accuracy {accuracy:.0%}  "
        f"distinct units in layer 2: {distinct_units(hidden)} of {hidden.shape[0]}"
    )
