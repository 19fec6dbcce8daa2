"""Too small weights make gradients vanish, too large ones make them explode; clipping helps.

Part 1 measures, after one backward pass through a 20-layer network, the gradient reaching
each layer's output (its RMS), from the first layer to the last, with a Monitor.
Part 2 trains a ReLU network whose weights are twice too large, with and without
gradient clipping.

Run:  python examples/05_vanishing_exploding.py [--quick]
"""

import sys

import numpy as np

import tinygrad_init as tg
from tinygrad_init import data, init, nn, optim
from tinygrad_init.diagnostics import Monitor

depth = 20
steps = 40 if "--quick" in sys.argv else 100
x, y = data.spirals(256, classes=3, generator=np.random.default_rng(0))


def mlp(activation, std):
    """``depth`` Linear layers of width 64, weights N(0, std^2), biases 0."""
    tg.manual_seed(0)
    layers = [nn.Linear(2, 64)]
    for _ in range(depth - 2):
        layers += [activation(), nn.Linear(64, 64)]
    layers += [activation(), nn.Linear(64, 3)]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            init.normal_(layer.weight, 0.0, std)
            init.zeros_(layer.bias)
    return nn.Sequential(*layers)


print("gradient RMS at each layer's output, one backward pass:")
for title, activation, std in [
    ("small N(0, 0.01^2), tanh", nn.Tanh, 0.01),
    ("large N(0, 1), tanh", nn.Tanh, 1.0),
    ("He N(0, 2/64), relu", nn.ReLU, np.sqrt(2 / 64)),
]:
    model = mlp(activation, std)
    with Monitor(model) as monitor, np.errstate(over="ignore"):
        nn.functional.cross_entropy(model(x), y).backward()
        records = monitor.step()
    first, last = records[0].grad_rms, records[-1].grad_rms
    print(
        f"{title:>26}: first layer {first:9.2e}   last layer {last:9.2e}   "
        f"first/last {first / last:9.2e}   -> {monitor.verdict().status}"
    )


def train(clip):
    model = mlp(nn.ReLU, 0.25)  # He would be sqrt(2/64) = 0.18: every layer grows the signal
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        with np.errstate(all="ignore"):  # the unclipped run overflows: that is the point
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses


print(f"\nReLU, weights N(0, 0.25^2), SGD lr 0.01 momentum 0.9, {steps} steps:")
for name, clip in [("no clipping", False), ("clip_grad_norm_(1.0)", True)]:
    losses = train(clip)
    print(f"{name:>22}: loss {losses[0]:.3g} -> {losses[-1]:.3g} (largest {np.nanmax(losses):.3g})")
