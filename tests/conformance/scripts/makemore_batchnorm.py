"""A character-level MLP language model with a hand-written BatchNorm, trained by a
manual update of p.data, with the activation, gradient and update-to-data statistics used
to judge its initialization."""

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(0)
syllables = ["ka", "ri", "mo", "el", "an", "li", "sa", "to", "ne", "vi", "ra", "jo", "ul"]
words = ["".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(400)]
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
itos = {i: s for s, i in stoi.items()}
vocab_size = len(itos)
block_size = 3


def build_dataset(words):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


Xtr, Ytr = build_dataset(words)

n_embd, n_hidden = 10, 64
g = torch.Generator().manual_seed(2147483647)
C = torch.randn((vocab_size, n_embd), generator=g)
W1 = (
    torch.randn((n_embd * block_size, n_hidden), generator=g)
    * (5 / 3)
    / (n_embd * block_size) ** 0.5
)
W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.01
b2 = torch.randn(vocab_size, generator=g) * 0
bngain = torch.ones((1, n_hidden))
bnbias = torch.zeros((1, n_hidden))
bnmean_running = torch.zeros((1, n_hidden))
bnstd_running = torch.ones((1, n_hidden))
parameters = [C, W1, W2, b2, bngain, bnbias]
for p in parameters:
    p.requires_grad = True


def forward(Xb, training=True):
    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hpreact = embcat @ W1
    if training:
        bnmeani = hpreact.mean(0, keepdim=True)
        bnstdi = hpreact.std(0, keepdim=True)
        with torch.no_grad():
            bnmean_running.mul_(0.999).add_(0.001 * bnmeani)
            bnstd_running.mul_(0.999).add_(0.001 * bnstdi)
    else:
        bnmeani, bnstdi = bnmean_running, bnstd_running
    hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
    h = torch.tanh(hpreact)
    return h, h @ W2 + b2


ud = []
lossi = []
max_steps, batch_size = 400, 32
for i in range(max_steps):
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix]
    h, logits = forward(Xb)
    loss = F.cross_entropy(logits, Yb)
    for p in parameters:
        p.grad = None
    loss.backward()
    lr = 0.1 if i < 300 else 0.01
    for p in parameters:
        p.data += -lr * p.grad
    lossi.append(loss.log10().item())
    with torch.no_grad():
        ud.append([((lr * p.grad).std() / p.data.std()).log10().item() for p in parameters])

with torch.no_grad():
    _, logits = forward(Xtr, training=False)
    train_loss = F.cross_entropy(logits, Ytr).item()
saturated = (h.abs() > 0.97).float().mean().item()

samples = []
for _ in range(5):
    out, context = [], [0] * block_size
    while True:
        with torch.no_grad():
            _, logits = forward(torch.tensor([context]), training=False)
        probs = F.softmax(logits, dim=1)
        ix = torch.multinomial(probs, num_samples=1, generator=g).item()
        context = context[1:] + [ix]
        if ix == 0 or len(out) > 20:
            break
        out.append(itos[ix])
    samples.append("".join(out))

# the same statistics on identical weights and one identical batch
arrays = [0.3 * rng.standard_normal(tuple(p.shape)) for p in parameters]
arrays[4] = 1 + 0.1 * rng.standard_normal((1, n_hidden))
with torch.no_grad():
    for p, a in zip(parameters, arrays):
        p.copy_(torch.tensor(a, dtype=torch.float32))
h, logits = forward(Xtr[:64])
loss = F.cross_entropy(logits, Ytr[:64])
for p in parameters:
    p.grad = None
h.retain_grad()
loss.backward()

RESULT = {
    "exact": {
        "loss": loss.item(),
        "grads": [p.grad.tolist() for p in parameters],
        "h_grad_std": h.grad.std().item(),
        "saturation": (h.abs() > 0.97).float().mean().item(),
        "update_ratio": [((0.1 * p.grad).std() / p.data.std()).log10().item() for p in parameters],
        "data_std": [p.data.std().item() for p in parameters],
        "grad_to_data": [(p.grad.std() / p.data.std()).item() for p in parameters],
    },
    "loss": train_loss,
    "final_ud": ud[-1],
    "samples": samples,
    "saturated": saturated,
}
