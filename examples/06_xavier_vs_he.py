"""A 30-layer ReLU network: He initialization trains, Xavier stalls (He et al. 2015).

ReLU zeroes half of its input, so each layer halves the signal's second moment under
Xavier's variance 1/fan_avg; after 30 layers the signal (and the gradient) has shrunk by
about 2^-30.  He's variance 2/fan_in compensates exactly.  The step is small (lr 0.001):
at lr 0.01 momentum SGD on 30 ReLU layers is at the edge of stability and He's loss
spikes.  The loss and the accuracy printed are measured on the same final weights.
Xavier's loss stays at ln 3 = 1.099, a uniform guess's; its accuracy can still sit above
chance (33%), because the argmax of nearly equal logits already picks up some structure.

Run:  python examples/06_xavier_vs_he.py [--quick]
"""

import sys

import numpy as np

import tinygrad_init as tg
from tinygrad_init import data, nn, optim

depth = 30
steps = 150 if "--quick" in sys.argv else 200
x, y = data.spirals(300, classes=3, generator=np.random.default_rng(0))


def train(weight_init):
    tg.manual_seed(0)
    widths = [2] + [64] * (depth - 1) + [3]
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [
            nn.Linear(fan_in, fan_out, weight_init=weight_init, bias_init="zeros"),
            nn.ReLU(),
        ]
    model = nn.Sequential(*layers[:-1])
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    for step in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step == 0:
            first = loss.item()
    with tg.no_grad():  # after the last update: loss and accuracy of the same weights
        logits = model(x)
        last = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    return first, last, accuracy


for name in ("xavier_normal", "kaiming_normal"):
    first, last, accuracy = train(name)
    print(f"{name:>15}: loss {first:.3f} -> {last:.3f}, accuracy {accuracy:.0%}")
