"""Train an MLP on three interleaved spirals, written exactly as in PyTorch.

Run:  python examples/02_mlp_training.py [--quick]
"""

import sys

import tinygrad_init as tg
from tinygrad_init import data, nn, optim

steps = 60 if "--quick" in sys.argv else 600
tg.manual_seed(0)
x, y = data.spirals(600, classes=3)

model = nn.Sequential(
    nn.Linear(2, 64),
    nn.ReLU(),
    nn.Linear(64, 64),
    nn.ReLU(),
    nn.Linear(64, 3),
)
print(model)
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-2)

for step in range(steps + 1):
    optimizer.zero_grad()
    logits = model(x)
    loss = loss_fn(logits, y)
    loss.backward()
    optimizer.step()
    if step % (steps // 6) == 0:
        accuracy = (logits.argmax(1) == y).float().mean().item()
        print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")
