"""The study's sections on the architectures of today and the theory behind them.

    sections = run_sections(["residual", "chaos"], quick=True)

Each section measures on real networks built with this framework, compares with theory
where there is one, and checks its findings on its own numbers:

* ``residual``: stream variance per block of 20/50/100-block ResNets under He branches,
  zero-init, 1/sqrt(L), GPT-2's 1/sqrt(2L), Fixup and BatchNorm, and which of them train;
* ``batchnorm``: gradient growth per layer at init of BN-ReLU MLPs (Yang et al. 2019:
  sqrt(pi / (pi - 1)) ~ 1.21 per layer) and what residual connections do to it;
* ``transformer``: attention entropy with and without 1/sqrt(d), gradient norms per
  layer at init and training on a synthetic reverse task, pre-LN vs post-LN, warm-up;
* ``chaos``: the mean-field phase diagram of tanh nets (Poole et al. 2016, Schoenholz et
  al. 2017) and the measured per-layer gradient factor beside the predicted chi_1;
* ``isometry``: singular values of the input-output Jacobian of deep tanh nets at
  criticality, orthogonal vs Gaussian weights (Pennington et al. 2017), and ReLU.

Every ``*_findings`` function takes the plain numbers a ``measure_*`` function returns,
so the checks can be tested on constructed numbers.  Everything is seeded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import data as datasets
from . import func, init, meanfield, models, nn, optim
from . import functional as F
from .autograd import no_grad
from .study import Check, Finding, train_steps
from .tensor import Tensor

__all__ = [
    "SECTIONS",
    "Section",
    "run_sections",
    "measure_residual",
    "residual_findings",
    "measure_batchnorm",
    "batchnorm_findings",
    "measure_transformer",
    "transformer_findings",
    "measure_chaos",
    "chaos_findings",
    "measure_isometry",
    "isometry_findings",
    "reverse_task",
    "trained",
]

SECTIONS = ("residual", "batchnorm", "transformer", "chaos", "isometry")

# Yang et al. 2019, "A mean field theory of batch normalization": at init the gradient of
# a BN-ReLU network grows by sqrt(pi / (pi - 1)) per layer toward the input.
BN_RELU_GROWTH = math.sqrt(math.pi / (math.pi - 1))


@dataclass
class Section:
    """One section's measurements (plain numbers), its checked findings and its time."""

    key: str
    title: str
    measurements: dict
    findings: list = field(default_factory=list)
    seconds: float = 0.0


def _geomean_growth(values):
    """exp(mean(log(v[i+1] / v[i]))): the mean factor per step of a positive sequence."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.diff(np.log(v)))))


# ----------------------------------------------------------------------------------------
# Residual networks

RESIDUAL_SCHEMES = {
    "he": dict(branch_scale="none"),
    "zero": dict(branch_scale="zero"),
    "sqrt_depth": dict(branch_scale="sqrt_depth"),
    "gpt2": dict(branch_scale="gpt2"),
    "fixup": dict(branch_scale="fixup"),
    "batchnorm": dict(branch_scale="none", norm="batch"),
}


def _residual_theory(scheme, depth, v0):
    """Predicted Var(stream after block l) / Var(stream after the stem), l = 0..depth."""
    blocks = np.arange(depth + 1)
    if scheme == "he":
        return 2.0**blocks
    if scheme in ("zero", "fixup"):
        return np.ones(depth + 1)
    if scheme == "sqrt_depth":
        return (1 + 1 / depth) ** blocks
    if scheme == "gpt2":
        return (1 + 1 / (2 * depth)) ** blocks
    # BatchNorm before each activation: every branch adds about unit variance
    return 1 + blocks / v0


def measure_residual(
    depths=(20, 50, 100), width=64, train_depth=50, steps=60, seed=0, compile=True
):
    """Stream variance per block at init for every scheme and depth; then each scheme
    trained at ``train_depth`` blocks on 3-class spirals (full-batch SGD, lr 0.01,
    momentum 0.9; ``compile`` as in :func:`~tinygrad_init.study.train_steps`).  Returns
    plain numbers."""
    gen = np.random.default_rng(seed)
    x = Tensor(gen.standard_normal((256, 32)).astype(np.float32))
    variance = {}
    for scheme, kw in RESIDUAL_SCHEMES.items():
        variance[scheme] = {}
        for depth in depths:
            model = models.make_resnet(depth, width, generator=seed, **kw)
            with no_grad():
                h = model[0](x)
                ratios = [1.0]
                v0 = float(np.var(h._array.astype(np.float64)))
                for block in list(model)[1 : depth + 1]:
                    h = block(h)
                    ratios.append(float(np.var(h._array.astype(np.float64))) / v0)
            variance[scheme][depth] = {
                "measured": ratios,
                "theory": _residual_theory(scheme, depth, v0).tolist(),
                "stem_variance": v0,
            }
    xs, ys = datasets.spirals(200, classes=3, generator=np.random.default_rng(seed))
    training = {}
    for scheme, kw in RESIDUAL_SCHEMES.items():
        model = models.make_resnet(
            train_depth, 32, in_features=2, out_features=3, generator=seed, **kw
        )
        optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        with np.errstate(all="ignore"):
            steps_run = train_steps(
                lambda x, y, model=model: F.cross_entropy(model(x), y),
                (xs, ys),
                optimizer,
                steps,
                compile=compile,
            )
            training[scheme] = [loss for _, loss in steps_run]
    return {"variance": variance, "training": training, "train_depth": train_depth}


_SCHEME_NAMES = {  # how the findings name the schemes of RESIDUAL_SCHEMES
    "he": "He",
    "zero": "zero-init",
    "sqrt_depth": "1/sqrt(L)",
    "gpt2": "GPT-2 1/sqrt(2L)",
    "fixup": "Fixup",
    "batchnorm": "BatchNorm",
}


def residual_findings(m):
    var = m["variance"]
    growth = {d: _geomean_growth(v["measured"]) for d, v in var["he"].items()}
    scaled = []
    for s in ("sqrt_depth", "gpt2"):
        for d, v in var[s].items():
            meas, th = v["measured"][-1], v["theory"][-1]
            scaled.append(
                Check(
                    f"{_SCHEME_NAMES[s]}, {d} blocks: {meas:.3g} times the stem's variance "
                    f"(needs within 15% of theory (1 + c^2)^L = {th:.3g})",
                    abs(meas / th - 1) < 0.15,
                )
            )
    for s in ("zero", "fixup"):
        for d, v in var[s].items():
            meas = v["measured"][-1]
            scaled.append(
                Check(
                    f"{_SCHEME_NAMES[s]}, {d} blocks: {meas:.7g} (needs 1 within 1e-5)",
                    abs(meas - 1) < 1e-5,
                )
            )
    tr, depth = m["training"], m["train_depth"]
    return [
        Finding(
            "Unscaled He branches double the residual stream's variance at every block",
            "A branch that preserves its input's variance (He weights, pre-activation ReLU) "
            "adds a second, independent copy of it to the stream: Var(x + F(x)) = 2 Var(x), "
            "so after L blocks the stream is 2^L times larger and the network's output and "
            "gradients explode with depth.",
            [
                Check(
                    f"{d} blocks: growth per block {g:.3f} (needs 1.8 to 2.2, theory 2)",
                    1.8 < g < 2.2,
                )
                for d, g in growth.items()
            ],
        ),
        Finding(
            "Scaled branches bound the stream: about e with 1/sqrt(L), about e^(1/2) with "
            "GPT-2's 1/sqrt(2L), exactly 1 with zero-init and Fixup",
            "Scaling the last layer of each branch by c makes each block multiply the "
            "variance by (1 + c^2): (1 + 1/L)^L -> e and (1 + 1/(2L))^L -> e^(1/2) at any "
            "depth; a zero last layer (torchvision's zero_init_residual, Fixup) makes every "
            "block the identity at init. Each figure is the stream's variance after the last "
            "block over the stem's.",
            scaled,
        ),
        Finding(
            "BatchNorm inside the branches makes the stream grow linearly, not exponentially",
            "Normalizing inside the branch makes every branch add about unit variance "
            "whatever the stream carries, so Var grows like v0 + L (De & Smith 2020): the "
            "branches' share of the stream shrinks as 1/L, which is why BatchNorm ResNets "
            "train at any depth.",
            [
                Check(
                    f"{d} blocks: stream variance ratio {v['measured'][-1]:.3g} after the last "
                    f"block (needs within 25% of 1 + L / v0 = {v['theory'][-1]:.3g})",
                    abs(v["measured"][-1] / v["theory"][-1] - 1) < 0.25,
                )
                for d, v in var["batchnorm"].items()
            ],
        ),
        Finding(
            f"At {depth} blocks plain He branches do not train; every scaled scheme does",
            "The exploding stream makes the first loss huge and the first SGD steps throw "
            "the weights away; with the stream bounded the same optimizer trains. Training "
            "means a finite loss that falls below 0.8x its start.",
            [
                Check(
                    f"{_SCHEME_NAMES[s]}: {_loss_text(losses)} "
                    + ("(needs not to train)" if s == "he" else "(needs to train)"),
                    trained(losses) != (s == "he"),
                )
                for s, losses in tr.items()
            ],
        ),
    ]


def trained(losses):
    """A run trained: its loss stayed finite and fell by more than 20%."""
    return all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0]


def _loss_text(losses):
    if not all(math.isfinite(v) for v in losses):
        return f"{losses[0]:.3g} -> diverged (step {len(losses) - 1})"
    return f"{losses[0]:.3g} -> {losses[-1]:.3g}"


# ----------------------------------------------------------------------------------------
# BatchNorm is not a cure


def _bn_mlp(depth, width, gen):
    """``depth`` x (He Linear, BatchNorm1d, ReLU); make_mlp's last Linear is an output
    layer, so the BatchNorm-ReLU of the last block is added after it."""
    body = models.make_mlp(
        depth, width, "relu", "kaiming_normal", width, width, generator=gen, norm="batch"
    )
    return nn.Sequential(*body, nn.BatchNorm1d(width), nn.ReLU())


def _weight_grad_norms(model, x, gen, layers):
    y = model(x)
    (y * Tensor(gen.standard_normal(y.shape).astype(y.dtype))).sum().backward()
    return [float(np.linalg.norm(layer.weight.grad._array)) for layer in layers]


def measure_batchnorm(depths=(10, 30, 50), width=256, batch=256, seed=0):
    """Weight-gradient norms per layer at init (a random projection of the output as the
    loss) of BN-ReLU MLPs, and per block of BatchNorm ResNets, at each depth."""
    plain, residual = {}, {}
    for depth in depths:
        gen = np.random.default_rng(seed)
        x = Tensor(gen.standard_normal((batch, width)).astype(np.float32))
        model = _bn_mlp(depth, width, gen)
        linears = [m for m in model if isinstance(m, nn.Linear)]
        plain[depth] = _weight_grad_norms(model, x, gen, linears)
        model = models.make_resnet(depth, width, norm="batch", in_features=width, generator=seed)
        firsts = [block.branch[2] for block in list(model)[1 : depth + 1]]
        residual[depth] = _weight_grad_norms(model, x, gen, firsts)
    return {"plain": plain, "residual": residual, "width": width, "batch": batch}


def _growth_toward_input(norms):
    """Fitted factor per layer by which gradient norms grow from the output to the input."""
    slope = np.polyfit(np.arange(len(norms)), np.log(np.asarray(norms, np.float64)), 1)[0]
    return float(np.exp(-slope))


def batchnorm_findings(m):
    plain = {d: _growth_toward_input(v) for d, v in m["plain"].items()}
    residual = {d: _growth_toward_input(v) for d, v in m["residual"].items()}
    deepest = max(plain)
    plain_fl, residual_fl = _first_last(m["plain"][deepest]), _first_last(m["residual"][deepest])
    return [
        Finding(
            "BatchNorm does not make init irrelevant: its gradients explode with depth",
            "Normalization fixes the forward scale but not the backward pass: at init the "
            "gradient of a BN-ReLU network grows by about sqrt(pi / (pi - 1)) = 1.21 per "
            "layer toward the input (Yang et al. 2019), so a 50-layer net starts with "
            "first-layer gradients thousands of times the last layer's.",
            [
                Check(
                    f"{d} layers: fitted growth {g:.3f} per layer toward the input, first/last "
                    f"{_first_last(m['plain'][d]):.3g} (needs within 5% of {BN_RELU_GROWTH:.3f})",
                    abs(g / BN_RELU_GROWTH - 1) < 0.05,
                )
                for d, g in plain.items()
            ],
        ),
        Finding(
            "Residual connections take most of the explosion away",
            "With the identity path beside each BN-ReLU branch the gradient reaches every "
            "block directly and each branch is one contribution among many (its share of "
            "the stream shrinks as 1/L), so the per-block factor stays close to 1 and the "
            "first/last ratio grows far more slowly than 1.21^L.",
            [
                *(
                    Check(
                        f"BatchNorm ResNet, {d} blocks: {residual[d]:.3f} per block (needs "
                        f"below {1 + (plain[d] - 1) / 2:.3f}, half as far from 1 as the plain "
                        f"net's {plain[d]:.3f})",
                        residual[d] - 1 < (plain[d] - 1) / 2,
                    )
                    for d in plain
                ),
                Check(
                    f"{deepest} blocks: first/last {residual_fl:.3g} (needs under a tenth of "
                    f"the plain net's {plain_fl:.3g})",
                    residual_fl < 0.1 * plain_fl,
                ),
            ],
        ),
    ]


def _first_last(norms):
    return norms[0] / norms[-1]


# ----------------------------------------------------------------------------------------
# Transformers


def reverse_task(n, length, vocab, generator):
    """``(tokens, targets)``: random sequences (N, L) of ``vocab`` symbols and the same
    sequences reversed; reversing needs attention to the mirrored position."""
    tokens = generator.integers(0, vocab, (n, length))
    return Tensor(tokens), Tensor(tokens[:, ::-1].copy())


def _attention_entropy(d, length, scale, gen):
    q = Tensor(gen.standard_normal((16, length, d)))
    k = Tensor(gen.standard_normal((16, length, d)))
    w = ((q @ k.transpose(-2, -1)) * scale).softmax(-1)._array
    entropy = -(w * np.log(np.maximum(w, 1e-300))).sum(-1).mean()
    return float(entropy / math.log(length))


TRANSFORMER_RUNS = {
    "pre-LN": dict(norm_first=True, residual_scale="none", warmup=False),
    "pre-LN + GPT-2 scaling": dict(norm_first=True, residual_scale="gpt2", warmup=False),
    "post-LN": dict(norm_first=False, residual_scale="none", warmup=False),
    "post-LN + warm-up": dict(norm_first=False, residual_scale="none", warmup=True),
}


def measure_transformer(depth=8, d_model=32, heads=4, steps=60, lr=3e-2, seed=0, compile=True):
    """Attention entropy at init with and without 1/sqrt(d); gradient norm of every
    encoder layer at init; Adam (lr ``lr``, warm-up over the first half of the steps where
    asked) on the reverse task for every run of :data:`TRANSFORMER_RUNS` (``compile`` as
    in :func:`~tinygrad_init.study.train_steps`)."""
    gen = np.random.default_rng(seed)
    d = 64
    entropy = {
        "scaled": _attention_entropy(d, 32, 1 / math.sqrt(d), gen),
        "unscaled": _attention_entropy(d, 32, 1.0, gen),
    }
    vocab, length = 8, 8
    x, y = reverse_task(64, length, vocab, gen)
    grads, losses = {}, {}
    for name, cfg in TRANSFORMER_RUNS.items():
        model = models.make_transformer(
            depth,
            d_model,
            heads,
            norm_first=cfg["norm_first"],
            residual_scale=cfg["residual_scale"],
            vocab_size=vocab,
            max_len=length,
            generator=seed,
        )
        optimizer = optim.Adam(model.parameters(), lr=lr)
        warm = steps // 2 if cfg["warmup"] else 0
        curve = []

        def loss_of(x, y, model=model):
            return F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))

        with np.errstate(all="ignore"):
            for step, loss in train_steps(loss_of, (x, y), optimizer, steps, compile=compile):
                for group in optimizer.param_groups:  # the lr of this step's update
                    group["lr"] = lr * min(1.0, (step + 1) / warm) if warm else lr
                if step == 0:
                    grads[name] = [
                        math.sqrt(sum(float((p.grad._array**2).sum()) for p in layer.parameters()))
                        for layer in model.encoder.layers
                    ]
                curve.append(loss)
        losses[name] = curve
    return {
        "entropy": entropy,
        "grads": grads,
        "losses": losses,
        "depth": depth,
        "lr": lr,
        "vocab": vocab,
        "head_dim": d,
    }


def transformer_findings(m):
    e, losses, vocab = m["entropy"], m["losses"], m["vocab"]
    chance = math.log(vocab)
    final = {k: v[-1] if all(math.isfinite(t) for t in v) else math.inf for k, v in losses.items()}
    best = {k: min(v) for k, v in losses.items()}
    warm = "post-LN + warm-up"
    return [
        Finding(
            "Scaling attention logits by 1/sqrt(d) keeps attention spread out at init",
            "For queries and keys with unit-variance entries q.k has variance d; dividing by "
            "sqrt(d) brings the logits back to unit variance. Unscaled, softmax saturates: "
            "each query attends to one key and the gradient through the other weights "
            "vanishes (Vaswani et al. 2017). Entropy is over log(S), at "
            f"d = {m['head_dim']}, S = 32.",
            [
                Check(
                    f"with 1/sqrt(d): entropy {e['scaled']:.3f} (needs above 0.8)",
                    e["scaled"] > 0.8,
                ),
                Check(
                    f"without: entropy {e['unscaled']:.3f} (needs below 0.5)", e["unscaled"] < 0.5
                ),
            ],
        ),
        Finding(
            f"Without warm-up, post-LN fails at a learning rate where pre-LN trains "
            f"({m['depth']} layers, Adam lr {m['lr']:g})",
            "In post-LN the LayerNorm sits on the residual stream itself, so large early "
            "updates pass through every normalization and destabilise training; pre-LN keeps "
            "an identity path from the output to every layer (Xiong et al. 2020).",
            [
                *(
                    Check(f"{k}: {_loss_text(losses[k])} (needs to end below 0.1)", final[k] < 0.1)
                    for k in ("pre-LN", "pre-LN + GPT-2 scaling")
                ),
                Check(
                    f"post-LN: {_loss_text(losses['post-LN'])} (needs to end above 0.7x chance "
                    f"level log {vocab} = {chance:.3f})",
                    final["post-LN"] > 0.7 * chance,
                ),
            ],
        ),
        Finding(
            "Warm-up lets post-LN train further before the full learning rate",
            "Ramping the learning rate up keeps the first, largest-gradient steps small, the "
            "remedy post-LN transformers rely on (Liu et al. 2020).",
            [
                Check(
                    f"lowest loss with warm-up {best[warm]:.3g} (final {final[warm]:.3g}; needs "
                    f"below half of post-LN's lowest {best['post-LN']:.3g})",
                    best[warm] < 0.5 * best["post-LN"],
                )
            ],
        ),
    ]


# ----------------------------------------------------------------------------------------
# Edge of chaos

CHAOS_SIGMA_B2 = 0.05


def measure_chaos(width=1000, depth=60, seed=0, grid=(30, 16)):
    """The chi_1 phase diagram on a (sigma_w^2, sigma_b^2) grid, and at sigma_b^2 = 0.05 the
    measured per-layer factor of the squared gradient norm of tanh nets (below, on and
    above the critical line) beside the predicted chi_1."""
    sw = np.linspace(0.5, 4.0, grid[0])
    sb = np.linspace(0.0, 0.3, grid[1])
    chi = meanfield.phase_diagram(sw, sb)
    critical = [meanfield.critical_sigma_w2(b) for b in sb]
    points = {}
    crit = meanfield.critical_sigma_w2(CHAOS_SIGMA_B2)
    for label, w in (("ordered", 1.3), ("critical", crit), ("chaotic", 2.5)):
        points[label] = {
            "sigma_w2": w,
            "predicted": meanfield.chi_1(w, CHAOS_SIGMA_B2),
            "measured": _measured_chi(w, CHAOS_SIGMA_B2, width, depth, seed),
            "depth_scale": meanfield.depth_scale(w, CHAOS_SIGMA_B2),
        }
    return {
        "sigma_w2": sw.tolist(),
        "sigma_b2": sb.tolist(),
        "chi_1": chi.tolist(),
        "critical": critical,
        "points": points,
        "width": width,
        "depth": depth,
    }


def _measured_chi(sigma_w2, sigma_b2, width, depth, seed, batch=8, skip=5):
    """mean over layers of ||dL/dz_l||^2 / ||dL/dz_(l+1)||^2 in a random tanh net whose
    input has the fixed-point variance q*, the first ``skip`` layers left out."""
    gen = np.random.default_rng(seed)
    q = meanfield.q_star(sigma_w2, sigma_b2)
    h = Tensor(gen.standard_normal((batch, width)) * math.sqrt(q), requires_grad=True)
    pre = []
    for layer in range(depth):
        w = Tensor(gen.standard_normal((width, width)) * math.sqrt(sigma_w2 / width))
        b = Tensor(gen.standard_normal(width) * math.sqrt(sigma_b2))
        z = (h if layer == 0 else h.tanh()) @ w.T + b
        z.retain_grad()
        pre.append(z)
        h = z
    h.backward(Tensor(gen.standard_normal(h.shape)))
    norms = np.array([float((z.grad._array**2).sum()) for z in pre])
    return float(np.exp(np.mean(np.log(norms[:-1] / norms[1:])[skip:])))


def chaos_findings(m, tolerance=0.03):
    pts = m["points"]
    agree = [
        Check(
            f"{k} sigma_w^2 = {p['sigma_w2']:.3f}: measured {p['measured']:.3f}, predicted "
            f"{p['predicted']:.3f} (needs within {tolerance:.0%})",
            abs(p["measured"] / p["predicted"] - 1) < tolerance,
        )
        for k, p in pts.items()
    ]
    ordered, chaotic = pts["ordered"]["measured"], pts["chaotic"]["measured"]
    return [
        Finding(
            "Mean-field theory predicts the per-layer gradient factor of real tanh networks",
            "The fixed point q* of the variance map and chi_1 = sigma_w^2 E[tanh'(sqrt(q*) "
            "z)^2] predict how much a gradient's squared norm changes per layer: below the "
            "critical line (chi_1 < 1) it vanishes over about xi = -1/log(chi_1) layers, "
            "above it explodes, on it (the edge of chaos) it is preserved (Poole et al. "
            f"2016, Schoenholz et al. 2017). Measured at width {m['width']}, {m['depth']} "
            f"layers, sigma_b^2 = {CHAOS_SIGMA_B2}.",
            [
                *agree,
                Check(f"ordered: measured {ordered:.3f} (needs below 1)", ordered < 1),
                Check(f"chaotic: measured {chaotic:.3f} (needs above 1)", chaotic > 1),
            ],
        )
    ]


# ----------------------------------------------------------------------------------------
# Dynamical isometry

ISOMETRY_SIGMA_B2 = 1e-6


def jacobian_singular_values(width, depth, kind, activation="tanh", seed=0):
    """Singular values of d(output)/d(input) of a deep net at one input.

    The Jacobian is ``func.jacrev`` of the input-output map (one recorded forward, one
    backward per output unit).  tanh nets sit at the edge of chaos (sigma_b^2 = 1e-6,
    sigma_w^2 on the critical line, input at q*); ReLU nets use He's sigma_w^2 = 2."""
    gen = np.random.default_rng(seed)
    if activation == "tanh":
        sw2 = meanfield.critical_sigma_w2(ISOMETRY_SIGMA_B2)
        sb2, q = ISOMETRY_SIGMA_B2, meanfield.q_star(sw2, ISOMETRY_SIGMA_B2)
    else:
        sw2, sb2, q = 2.0, 0.0, 1.0
    x0 = Tensor(gen.standard_normal(width) * math.sqrt(q))
    layers = []
    for _ in range(depth):
        w = Tensor(np.empty((width, width)))
        if kind == "orthogonal":
            init.orthogonal_(w, gain=math.sqrt(sw2), generator=gen)
        else:
            init.normal_(w, 0.0, math.sqrt(sw2 / width), generator=gen)
        layers.append((w, Tensor(gen.standard_normal(width) * math.sqrt(sb2))))

    def network(h):
        for w, b in layers:
            z = w @ h + b
            h = z.tanh() if activation == "tanh" else z.relu()
        return h

    with no_grad():  # the weights are constants: the Jacobian is a plain array
        jacobian = func.jacrev(network)(x0)
    return np.linalg.svd(jacobian.numpy(), compute_uv=False)


def measure_isometry(width=200, depths=(16, 64, 256), seed=0):
    """Jacobian singular values (log10, clipped at 1e-20) for orthogonal and Gaussian tanh
    nets at every depth, and an orthogonal ReLU net at the middle depth."""
    out = {"width": width, "tanh": {}, "relu": {}}
    for kind in ("orthogonal", "gaussian"):
        out["tanh"][kind] = {
            d: np.log10(
                np.maximum(jacobian_singular_values(width, d, kind, seed=seed), 1e-20)
            ).tolist()
            for d in depths
        }
    mid = depths[len(depths) // 2]
    out["relu"]["orthogonal"] = {
        mid: np.log10(
            np.maximum(jacobian_singular_values(width, mid, "orthogonal", "relu", seed), 1e-20)
        ).tolist()
    }
    return out


def _spread(log_values):
    """p90 / p10 of the singular values, from their log10."""
    return float(10 ** (np.percentile(log_values, 90) - np.percentile(log_values, 10)))


def _spread_bound(log_values, width):
    """``(p90 / p10, resolved)``.  A float64 SVD of a width x width matrix resolves singular
    values down to about ``max * width * eps``; below that they are rounding noise (they
    change with the order of the sums).  When p10 is below it, the spread is only known to
    exceed p90 / floor, and that bound is returned with ``resolved`` False."""
    floor = max(log_values) + math.log10(width * np.finfo(np.float64).eps)
    p90, p10 = np.percentile(log_values, 90), np.percentile(log_values, 10)
    if p10 >= floor:
        return float(10 ** (p90 - p10)), True
    return float(10 ** (p90 - floor)), False


def _spread_check(label, log_values, width):
    """The check "the singular values spread by more than 10x" (p90 / p10)."""
    spread, resolved = _spread_bound(log_values, width)
    text = f"{spread:.3g}" if resolved else f"above {spread:.2g} (p10 below float64 resolution)"
    return Check(f"{label}: p90/p10 {text} (needs above 10)", spread > 10)


def isometry_findings(m):
    width = m["width"]
    orth_checks = []
    for d, v in m["tanh"]["orthogonal"].items():
        orth_checks.append(
            Check(
                f"orthogonal, {d} layers: p90/p10 {_spread(v):.3g} (needs below 2)", _spread(v) < 2
            )
        )
        orth_checks.append(
            Check(
                f"orthogonal, {d} layers: largest {10 ** max(v):.3g} (needs below 2)",
                10 ** max(v) < 2,
            )
        )
    return [
        Finding(
            "At the edge of chaos orthogonal tanh nets are dynamically isometric; Gaussian "
            "ones are not",
            "chi_1 = 1 only fixes the mean squared singular value of the input-output "
            "Jacobian. With orthogonal weights and small q* every singular value stays near "
            "1 at any depth; Gaussian weights multiply in their own spread, which compounds "
            f"(Pennington, Schoenholz & Ganguli 2017). Width {width}; p90/p10 is the ratio of "
            "the 90th to the 10th percentile of the singular values.",
            [
                *orth_checks,
                *(
                    _spread_check(f"Gaussian, {d} layers", v, width)
                    for d, v in m["tanh"]["gaussian"].items()
                ),
            ],
        ),
        Finding(
            "ReLU networks cannot be dynamically isometric, even with orthogonal weights",
            "ReLU's derivative is 0 for half of the units: each layer's Jacobian D W "
            "projects away about half of the directions, whatever W is.",
            [
                _spread_check(f"orthogonal ReLU (He gain), {d} layers", v, width)
                for d, v in m["relu"]["orthogonal"].items()
            ],
        ),
    ]


# ----------------------------------------------------------------------------------------
# Running them

_TITLES = {
    "residual": "Residual networks",
    "batchnorm": "BatchNorm is not a cure",
    "transformer": "Transformers",
    "chaos": "Edge of chaos",
    "isometry": "Dynamical isometry",
}


def _settings(quick, seed, compile=True):
    if quick:
        return {
            "residual": dict(depths=(20, 50), train_depth=30, steps=40, seed=seed, compile=compile),
            "batchnorm": dict(depths=(10, 30), width=128, batch=128, seed=seed),
            "transformer": dict(depth=8, steps=40, seed=seed, compile=compile),
            "chaos": dict(width=300, depth=30, seed=seed),
            "isometry": dict(width=100, depths=(16, 64, 256), seed=seed),
        }
    return {
        "residual": dict(seed=seed, compile=compile),
        "batchnorm": dict(seed=seed),
        "transformer": dict(seed=seed, compile=compile),
        "chaos": dict(seed=seed),
        "isometry": dict(seed=seed),
    }


def _tolerances(quick):
    return {"chaos": 0.05 if quick else 0.03}


def run_sections(keys=SECTIONS, quick=False, seed=0, progress=None, compile=True):
    """Measure and check the named sections; ``progress(done, total, label)`` as it goes.
    ``compile=False`` trains the residual and transformer runs eagerly (the same numbers)."""
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    settings = _settings(quick, seed, compile)
    measure = {
        "residual": (measure_residual, residual_findings),
        "batchnorm": (measure_batchnorm, batchnorm_findings),
        "transformer": (measure_transformer, transformer_findings),
        "chaos": (measure_chaos, lambda m: chaos_findings(m, _tolerances(quick)["chaos"])),
        "isometry": (measure_isometry, isometry_findings),
    }
    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        for k, key in enumerate(keys):
            if progress:
                progress(k, len(keys), _TITLES[key])
            start = time.perf_counter()
            fn, check = measure[key]
            m = fn(**settings[key])
            out.append(Section(key, _TITLES[key], m, check(m), time.perf_counter() - start))
    if progress:
        progress(len(keys), len(keys), "done")
    return out
