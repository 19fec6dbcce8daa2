"""A small CNN (conv-relu-pool twice, then linear) learns horizontal vs vertical bars.

Run:  python examples/03_cnn_training.py [--quick]
"""

import sys

import tinygrad_init as tg
from tinygrad_init import data, nn, optim

steps = 15 if "--quick" in sys.argv else 80
tg.manual_seed(0)
x, y = data.bars(256, size=12)

model = nn.Sequential(
    nn.Conv2d(1, 8, kernel_size=3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),  # 8 x 6 x 6
    nn.Conv2d(8, 16, kernel_size=3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),  # 16 x 3 x 3
    nn.Flatten(),
    nn.Linear(16 * 3 * 3, 2),
)
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

for step in range(steps + 1):
    optimizer.zero_grad()
    logits = model(x)
    loss = loss_fn(logits, y)
    loss.backward()
    optimizer.step()
    if step % 5 == 0:
        accuracy = (logits.argmax(1) == y).float().mean().item()
        print(f"step {step:3d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")
