"""An MNIST-style classifier on synthetic 28x28 images: DataLoader, nn.Module, SGD with
momentum, a step schedule, train/eval modes and an accuracy count."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(0)
centres = rng.standard_normal((10, 784)).astype(np.float32)
labels = rng.integers(0, 10, 512)
images = centres[labels] + 2.0 * rng.standard_normal((512, 784)).astype(np.float32)
train = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.dropout = nn.Dropout(0.1)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        return F.log_softmax(self.fc2(x), dim=1)


torch.manual_seed(1)
device = torch.device("cpu")
model = Net().to(device)
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))

for _epoch in range(1, 4):
    model.train()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
    scheduler.step()

model.eval()
test_loss, correct = 0.0, 0
with torch.no_grad():
    for data, target in DataLoader(train, batch_size=128):
        output = model(data)
        test_loss += F.nll_loss(output, target, reduction="sum").item()
        pred = output.argmax(dim=1, keepdim=True)
        correct += pred.eq(target.view_as(pred)).sum().item()
test_loss /= len(train)

# gradients on identical weights and inputs
same = Net()
with torch.no_grad():
    for p in same.parameters():
        p.copy_(torch.from_numpy(0.05 * rng.standard_normal(tuple(p.shape)).astype(np.float32)))
same.eval()
F.nll_loss(same(torch.from_numpy(images[:32])), torch.from_numpy(labels[:32])).backward()

RESULT = {
    "exact": {name: p.grad.tolist() for name, p in same.named_parameters()},
    "loss": test_loss,
    "accuracy": correct / len(train),
}
