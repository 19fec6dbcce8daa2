"""The initialization study behind ``tinygrad-init demo``.

The same deep MLP (default 20 Linear layers of width 64) is trained on the same data with
plain SGD (momentum 0.9) under every combination of activation (sigmoid, tanh, relu) and
weight initialization (:data:`SCHEMES`), biases always starting at zero; the large-weight
runs are repeated with gradient clipping; a 30-layer ReLU network is trained with Xavier
and with He.  A :class:`~tinygrad_init.diagnostics.Monitor` records per-layer statistics
along the way.  :func:`findings` then checks, on the measured numbers, the classic claims:

* zero weights keep the hidden units of a layer identical (zero biases alone do not);
* small random weights make the gradient vanish toward the input with sigmoid and tanh;
* large random weights make gradients explode or units saturate, and clipping tames the
  explosion;
* Xavier keeps tanh healthy and He keeps ReLU healthy; at 30 ReLU layers He trains while
  Xavier stalls (He et al. 2015).

Everything is seeded: the same configuration gives the same numbers.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import data as datasets
from . import functional as F
from . import init, models, nn, optim, replay
from .autograd import no_grad
from .diagnostics import EXPLODING, HEALTHY, NONFINITE, VANISHING, Monitor

__all__ = [
    "ACTIVATIONS",
    "SCHEMES",
    "Scheme",
    "StudyConfig",
    "RunResult",
    "Finding",
    "Study",
    "load_data",
    "run_one",
    "plan",
    "run_study",
    "findings",
]

ACTIVATIONS = ("sigmoid", "tanh", "relu")


@dataclass(frozen=True)
class Scheme:
    """A weight initialization as the study names it."""

    key: str  # short name used in tables: "he"
    title: str  # "He / Kaiming"
    init: str  # registry name in tinygrad_init.init
    formula: str  # what the weights are drawn from
    lsuv: bool = False


SCHEMES = (
    Scheme("zeros", "zeros", "zeros", "W = 0"),
    Scheme("small", "small random", "small_normal", "N(0, 0.01²)"),
    Scheme("large", "large random", "normal", "N(0, 1)"),
    Scheme("xavier", "Xavier / Glorot", "xavier_normal", "N(0, 2 / (fan_in + fan_out))"),
    Scheme("he", "He / Kaiming", "kaiming_normal", "N(0, 2 / fan_in)"),
    Scheme("lecun", "LeCun", "lecun_normal", "truncated N, variance 1 / fan_in"),
    Scheme("orthogonal", "orthogonal", "orthogonal", "W Wᵀ = I (Saxe et al. 2014)"),
    Scheme(
        "lsuv",
        "LSUV",
        "orthogonal",
        "orthogonal, then each layer rescaled to unit output variance",
        lsuv=True,
    ),
)
_SCHEMES = {s.key: s for s in SCHEMES}


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains: ``depth`` Linear layers of ``width`` units, ``steps`` full-batch
    SGD steps (``lr``, momentum 0.9) on ``samples`` points of ``data``; ``clip`` is the
    max gradient norm of the clipped runs; ``deep_depth`` the depth of the He-vs-Xavier
    comparison; the Monitor records every ``record_every`` steps."""

    depth: int = 20
    width: int = 64
    steps: int = 200
    seed: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    clip: float = 1.0
    samples: int = 300
    data: str = "spirals"
    deep_depth: int = 30
    record_every: int = 10

    def __post_init__(self):
        for name in ("depth", "width", "steps", "samples", "deep_depth", "record_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be at least 2 (a hidden layer), got {self.depth}")
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.data not in ("spirals", "digits"):
            raise ValueError(f"data must be 'spirals' or 'digits', got {self.data!r}")

    @classmethod
    def quick(cls, **overrides):
        """A configuration that shows the same findings in a fraction of the time."""
        return cls(**{"steps": 150, "samples": 150, **overrides})


@dataclass
class RunResult:
    """One training run: its settings, its loss curve and what the Monitor saw."""

    activation: str
    scheme: Scheme
    depth: int
    clip: float | None
    losses: list
    accuracy: float
    status: str  # verdict at initialization (step 0)
    grad_ratio: float | None  # first layer's gradient RMS / last layer's, at step 0
    saturated: float | None  # mean saturated fraction at step 0 (sigmoid, tanh)
    dead: float | None  # mean dead-unit fraction at step 0 (relu)
    distinct_units: list  # distinct rows of each hidden layer's weight, after training
    verdict: str
    monitor: Monitor = field(repr=False)
    initial_samples: dict = field(repr=False, default_factory=dict)  # activations at step 0
    seconds: float = 0.0

    @property
    def label(self):
        clip = f" + clip {self.clip:g}" if self.clip else ""
        return f"{self.activation} + {self.scheme.key}{clip}, {self.depth} layers"

    @property
    def first_loss(self):
        return self.losses[0]

    @property
    def final_loss(self):
        return self.losses[-1]

    @property
    def diverged(self):
        return not all(math.isfinite(v) for v in self.losses)


def load_data(config):
    """``(x, y, classes)`` of the configured data set."""
    gen = np.random.default_rng(config.seed)
    if config.data == "digits":
        x, y = datasets.digits()
        keep = gen.permutation(len(y))[: config.samples]
        return x[keep], y[keep], 10
    x, y = datasets.spirals(config.samples, classes=3, generator=gen)
    return x, y, 3


def _distinct_rows(weight):
    return int(len(np.unique(np.round(weight._array.astype(np.float64), 6), axis=0)))


def _mean_of(records, key):
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _build(x, classes, activation, scheme, config, depth, gen):
    model = models.make_mlp(
        depth,
        config.width,
        activation,
        scheme.init,
        in_features=x.shape[1],
        out_features=classes,
        generator=gen,
    )
    if scheme.lsuv:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a layer that cannot reach unit variance
            init.lsuv_(model, x, generator=gen)
    return model


def _train(model, x, y, config, clip):
    """Full-batch SGD; stops early once the loss is no longer finite."""
    optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    losses, initial_samples = [], {}

    @replay.compile  # replayed on the steps the Monitor skips; its steps run eagerly
    def forward_backward(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with Monitor(model, every=config.record_every) as monitor:
        for step in range(config.steps):
            loss = forward_backward(x, y)
            monitor.step()
            if step == 0:
                initial_samples = dict(monitor.samples)
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                break
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
    return monitor, losses, initial_samples


def run_one(x, y, classes, activation, scheme, config, clip=None, depth=None):
    """Train one network and return its :class:`RunResult`."""
    scheme = _SCHEMES[scheme] if isinstance(scheme, str) else scheme
    depth = depth or config.depth
    start = time.perf_counter()
    # Overflow is one of the outcomes under study (large weights): it shows up as an
    # infinite loss and a 'nan' verdict, not as warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        model = _build(
            x, classes, activation, scheme, config, depth, np.random.default_rng(config.seed)
        )
        monitor, losses, initial_samples = _train(model, x, y, config, clip)
        with no_grad():
            accuracy = float((model(x).argmax(1)._array == y._array).mean())
    verdict = monitor.verdict(step=0)
    at_init = [r for r in monitor.records if r["step"] == 0]
    hidden = [m.weight for m in model if isinstance(m, nn.Linear)][:-1]
    return RunResult(
        activation=activation,
        scheme=scheme,
        depth=depth,
        clip=clip,
        losses=losses,
        accuracy=accuracy,
        status=verdict.status,
        grad_ratio=verdict.ratio,
        saturated=_mean_of(at_init, "saturated"),
        dead=_mean_of(at_init, "dead"),
        distinct_units=[_distinct_rows(w) for w in hidden],
        verdict=str(verdict),
        monitor=monitor,
        initial_samples=initial_samples,
        seconds=time.perf_counter() - start,
    )


def plan(config):
    """The runs of the study, in order: ``(activation, scheme key, clip, depth)``."""
    runs = [(a, s.key, None, config.depth) for a in ACTIVATIONS for s in SCHEMES]
    runs += [(a, "large", config.clip, config.depth) for a in ACTIVATIONS]
    runs += [("relu", key, None, config.deep_depth) for key in ("xavier", "he")]
    return runs


@dataclass
class Finding:
    """A claim about initialization, checked on the study's own numbers."""

    title: str
    holds: bool
    explanation: str
    evidence: str


@dataclass
class Study:
    config: StudyConfig
    results: list
    findings: list
    seconds: float

    def get(self, activation, scheme, clip=None, depth=None):
        depth = depth or self.config.depth
        for r in self.results:
            if (r.activation, r.scheme.key, r.clip, r.depth) == (activation, scheme, clip, depth):
                return r
        raise KeyError(f"no run {activation} + {scheme} (clip {clip}, depth {depth})")


def run_study(config=None, progress=None):
    """Run every planned configuration; ``progress(done, total, label)`` is called as it goes.

    Returns a :class:`Study` with the results and the checked :func:`findings`.
    """
    config = config or StudyConfig()
    start = time.perf_counter()
    x, y, classes = load_data(config)
    runs = plan(config)
    results = []
    # The matrices are small (samples x width): one BLAS thread is fastest, and a
    # multi-threaded BLAS slows down many times over when other processes share the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        for k, (activation, scheme, clip, depth) in enumerate(runs):
            if progress:
                progress(
                    k, len(runs), f"{activation} + {scheme}" + (f" + clip {clip:g}" if clip else "")
                )
            results.append(run_one(x, y, classes, activation, scheme, config, clip, depth))
    if progress:
        progress(len(runs), len(runs), "done")
    study = Study(config, results, [], time.perf_counter() - start)
    study.findings = findings(study)
    return study


def _fmt_ratio(r):
    return "nan" if r is None or not math.isfinite(r) else f"{r:.1e}"


def findings(study):
    """Check the classic claims on the measured numbers; each :class:`Finding` says
    whether it held, why it should, and the numbers that decide it."""
    cfg, get = study.config, study.get
    out = []

    zeros = [get(a, "zeros") for a in ACTIVATIONS]
    xavier = [get(a, "xavier") for a in ACTIVATIONS]
    symmetric = all(max(r.distinct_units) == 1 for r in zeros)
    broken = all(min(r.distinct_units) == cfg.width for r in xavier)
    out.append(
        Finding(
            "Zero weights keep every hidden unit of a layer identical",
            symmetric and broken,
            "With all weights equal, every unit of a layer computes the same output and gets "
            "the same gradient, so no training step can tell them apart: each layer behaves "
            "like a single unit. Random weights break the symmetry, and then zero biases are "
            "harmless (every run here starts its biases at zero).",
            "distinct hidden units per layer after training: zeros "
            + ", ".join(f"{r.activation} {max(r.distinct_units)}" for r in zeros)
            + "; Xavier with zero biases "
            + ", ".join(f"{r.activation} {min(r.distinct_units)}" for r in xavier)
            + f" (of {cfg.width})",
        )
    )

    small = [get(a, "small") for a in ("sigmoid", "tanh")]
    out.append(
        Finding(
            "Small random weights make the gradient vanish toward the input (sigmoid, tanh)",
            all(r.status == VANISHING for r in small),
            "Each layer multiplies the back-propagated gradient by its weights (times the "
            "activation's slope): with N(0, 0.01²) weights that is a factor far below 1 per "
            "layer, compounded over the depth, so the first layers barely learn.",
            "; ".join(
                f"{r.activation}: first/last layer gradient {_fmt_ratio(r.grad_ratio)}"
                for r in small
            ),
        )
    )

    large = [get(a, "large") for a in ACTIVATIONS]

    def bad(r):
        return r.status in (EXPLODING, NONFINITE) or (r.saturated or 0) > 0.25

    out.append(
        Finding(
            "Large random weights make gradients explode or units saturate",
            all(bad(r) for r in large),
            "N(0, 1) weights multiply the signal's scale by about sqrt(fan_in) per layer. "
            "Sigmoid and tanh are pushed onto their flat tails (a saturated unit, output "
            "within 0.01 of an asymptote, passes almost no gradient; here more than a quarter "
            "of them); where the slope survives (ReLU, and tanh's steep centre) the backward "
            "pass grows by the same factor per layer and the gradient explodes.",
            "; ".join(
                f"{r.activation}: {r.status}, first/last {_fmt_ratio(r.grad_ratio)}"
                + (f", {r.saturated:.0%} saturated" if r.saturated is not None else "")
                for r in large
            ),
        )
    )

    plain, clipped = get("relu", "large"), get("relu", "large", clip=cfg.clip)
    tamed = (
        (plain.diverged or plain.final_loss >= plain.first_loss)
        and not clipped.diverged
        and clipped.final_loss < clipped.first_loss
    )
    out.append(
        Finding(
            "Gradient clipping tames the explosion",
            tamed,
            "Rescaling the gradient to a maximum norm bounds every step, so exploding "
            "gradients can no longer throw the weights to infinity; clipping does not fix the "
            "initialization, it only makes it survivable.",
            f"ReLU, N(0, 1): without clipping the loss goes {plain.first_loss:.3g} -> "
            f"{plain.final_loss:.3g}{' (diverged)' if plain.diverged else ''}; with "
            f"clip_grad_norm_({cfg.clip:g}) {clipped.first_loss:.3g} -> {clipped.final_loss:.3g}",
        )
    )

    matched = (
        (
            "tanh",
            "xavier",
            "Xavier keeps tanh healthy",
            "Xavier's variance 2 / (fan_in + fan_out) keeps the signal's variance (and the "
            "gradient's, going back) about constant through layers that are linear around 0, "
            "as tanh is.",
        ),
        (
            "relu",
            "he",
            "He keeps ReLU healthy",
            "ReLU zeroes half of its input, halving the signal's second moment at every layer; "
            "He's variance 2 / fan_in doubles it back, so signal and gradient keep their scale.",
        ),
    )
    for activation, key, name, why in matched:
        r = get(activation, key)
        out.append(
            Finding(
                name,
                r.status == HEALTHY and r.final_loss < 0.7 * r.first_loss,
                why + " Healthy here means every layer's gradient within a factor 100 of the "
                "last layer's, and the loss falling by more than 30%.",
                f"{r.label}: {r.status}, first/last gradient {_fmt_ratio(r.grad_ratio)}, "
                f"loss {r.first_loss:.3f} -> {r.final_loss:.3f}, accuracy {r.accuracy:.0%}",
            )
        )

    deep_x = get("relu", "xavier", depth=cfg.deep_depth)
    deep_h = get("relu", "he", depth=cfg.deep_depth)
    out.append(
        Finding(
            f"At {cfg.deep_depth} ReLU layers He trains while Xavier stalls (He et al. 2015)",
            deep_h.final_loss < 0.7 * deep_h.first_loss
            and deep_x.final_loss > 0.9 * deep_x.first_loss,
            "Under Xavier each ReLU layer halves the signal's second moment: after 30 layers "
            "the signal and its gradient have shrunk by about 2^-30 and SGD cannot move. He's "
            "factor 2 compensates exactly.",
            f"loss after {cfg.steps} steps: He {deep_h.first_loss:.3f} -> "
            f"{deep_h.final_loss:.3f} (accuracy {deep_h.accuracy:.0%}); Xavier "
            f"{deep_x.first_loss:.3f} -> {deep_x.final_loss:.3f} "
            f"(accuracy {deep_x.accuracy:.0%})",
        )
    )
    return out
