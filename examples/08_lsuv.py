"""LSUV (Mishkin & Matas 2016): orthogonal weights, then rescale each layer on real data
until its output variance is 1.

Run:  python examples/08_lsuv.py [--quick]
"""

import sys

import numpy as np

import tinygrad_init as tg
from tinygrad_init import data, init, nn

depth = 10 if "--quick" in sys.argv else 20
x, _ = data.spirals(256, classes=3, generator=np.random.default_rng(0))

tg.manual_seed(0)
layers = [nn.Linear(2, 64), nn.Tanh()]
for _ in range(depth - 1):
    layers += [nn.Linear(64, 64), nn.Tanh()]
model = nn.Sequential(*layers)
linears = [m for m in model if isinstance(m, nn.Linear)]


def output_variances():
    outputs = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach().numpy().var()))
        for m in linears
    ]
    with tg.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return np.array(outputs)


before = output_variances()
init.lsuv_(model, x, tol=0.05)
after = output_variances()
print("layer   var before LSUV   var after LSUV")
for k, (b, a) in enumerate(zip(before, after)):
    print(f"{k:5d}   {b:15.4f}   {a:14.4f}")
