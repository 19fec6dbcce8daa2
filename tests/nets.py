"""Networks shared by the diagnostics and op-graph tests."""

import numpy as np

from tinygrad_init import init, nn


class Block(nn.Module):
    def __init__(self, width, gen, scale=1.0, zero=False):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        for fc in (self.fc1, self.fc2):
            init.kaiming_normal_(fc.weight, generator=gen)
            init.zeros_(fc.bias)
        self.fc2.weight.data *= scale
        if zero:
            init.zeros_(self.fc2.weight)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))


class ResMLP(nn.Module):
    """``depth`` blocks x + fc2(relu(fc1(x))), He weights, an optional final LayerNorm."""

    def __init__(self, depth=20, width=64, norm=True, **kw):
        super().__init__()
        gen = np.random.default_rng(0)
        self.blocks = nn.ModuleList([Block(width, gen, **kw) for _ in range(depth)])
        self.norm = nn.LayerNorm(width) if norm else nn.Identity()
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))
