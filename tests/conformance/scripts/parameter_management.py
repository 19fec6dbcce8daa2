"""Parameters: access, names, state dicts, built-in and custom initialization, tied
layers."""

import torch
from torch import nn

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
X = torch.rand(size=(2, 4))
net(X)

state = net[2].state_dict()
names = [name for name, param in net.named_parameters()]
shapes = [tuple(param.shape) for name, param in net[0].named_parameters()]
bias_data = net[2].bias.data


def init_normal(m):
    if type(m) is nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def init_constant(m):
    if type(m) is nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


net.apply(init_normal)
small = net[0].weight.data.abs().max().item()
net.apply(init_constant)
const_out = net(torch.ones(1, 4)).item()

net[0].weight.data[:] += 1
net[0].weight.data[0, 0] = 42
corner = net[0].weight.data[0].tolist()

shared = nn.Linear(8, 8)
tied = nn.Sequential(
    nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1)
)
tied(X)
same_object = tied[2].weight is tied[4].weight
tied[2].weight.data[0, 0] = 100
still_same = bool(tied[2].weight.data[0, 0] == tied[4].weight.data[0, 0])
n_params = sum(p.numel() for p in tied.parameters())

RESULT = {
    "exact": {
        "state_keys": sorted(state.keys()),
        "names": names,
        "shapes": shapes,
        "bias_shape": list(bias_data.shape),
        "small": small < 0.1,
        "const_out": const_out,
        "corner": corner,
        "same_object": same_object,
        "still_same": still_same,
        "n_params": n_params,
    }
}
