"""The initialization study behind ``tinygrad-init demo``.

The same deep MLP (default 20 Linear layers of width 64) is trained on the same data with
plain SGD (momentum 0.9) under every combination of activation (sigmoid, tanh, relu) and
weight initialization (:data:`SCHEMES`), biases always starting at zero; the large-weight
runs are repeated with gradient clipping; a 30-layer ReLU network is trained with Xavier
and with He.  A :class:`~tinygrad_init.diagnostics.Monitor` records per-layer statistics
along the way.  :func:`findings` then checks, on the measured numbers, the classic claims
(one function each in :data:`FINDINGS`, every number a finding states tested by a
:class:`Check`, the final loss and the accuracy measured on the same final weights):

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
from .diagnostics import Monitor, Thresholds

__all__ = [
    "ACTIVATIONS",
    "SCHEMES",
    "Scheme",
    "StudyConfig",
    "RunResult",
    "RunSpec",
    "Check",
    "Finding",
    "Study",
    "load_data",
    "train_steps",
    "evaluate",
    "run_one",
    "plan",
    "run_study",
    "FINDINGS",
    "THRESHOLDS",
    "findings",
    "well_above_chance",
    "loss_falls",
    "loss_flat",
    "vanishing",
    "exploding",
    "healthy",
    "check_trains",
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
    comparison, trained with the smaller step ``deep_lr`` (at lr 0.01, and still at 0.002,
    momentum SGD on a 30-layer ReLU net is at the edge of stability: He's loss spikes from
    0.04 back to 1.2, so where the last step lands would decide the finding); the Monitor
    records every ``record_every`` steps.  ``compile=False`` runs every training step
    eagerly instead of through :func:`tinygrad_init.compile`: the same numbers bit for
    bit (for timing the two)."""

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
    deep_lr: float = 0.001
    record_every: int = 10
    compile: bool = True

    def __post_init__(self):
        for name in ("depth", "width", "steps", "samples", "deep_depth", "record_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be at least 2 (a hidden layer), got {self.depth}")
        for name in ("lr", "deep_lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        if self.data not in ("spirals", "digits"):
            raise ValueError(f"data must be 'spirals' or 'digits', got {self.data!r}")

    @classmethod
    def quick(cls, **overrides):
        """A configuration that shows the same findings in a fraction of the time."""
        return cls(**{"steps": 150, "samples": 150, **overrides})


@dataclass
class RunResult:
    """One training run: its settings, its loss curve and what the Monitor saw.

    ``losses[k]`` is the full-batch loss after ``k`` SGD updates, so a run of ``steps``
    updates has ``steps + 1`` of them; the last one and ``accuracy`` are measured on the
    same final weights.  A run that diverges stops at its first non-finite loss, and its
    accuracy is that of the weights that gave it."""

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
    lr: float = 0.01

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
    values = [getattr(r, key) for r in records if getattr(r, key) is not None]
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


def train_steps(loss_of, inputs, optimizer, steps, clip=None, compile=True):
    """Up to ``steps`` training steps of ``optimizer`` on the loss ``loss_of(*inputs)``.

    A generator: after each step's forward and backward it yields ``(step, loss)``, the
    loss as a Python float and the gradients those of that loss, not yet clipped; the
    update (``clip_grad_norm_(params, clip)`` when ``clip`` is given, then
    ``optimizer.step()``) follows the yield, so the caller may read the gradients (a
    Monitor's ``step()``) or set a ``param_group``'s ``lr`` for this step's update in
    between.  It stops after ``steps`` updates, or at the first non-finite loss without
    updating: the weights are then those that gave it.

    With ``compile`` each update and the next step's ``zero_grad``, forward and backward are
    one :func:`tinygrad_init.compile`'d call, replayed once recorded (a step on which a
    Monitor records runs eagerly, as its hooks ask); ``compile=False`` runs the very same
    calls eagerly, with the same numbers bit for bit.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def forward_backward(*inputs):
        optimizer.zero_grad()
        loss = loss_of(*inputs)
        loss.backward()
        return loss

    def update():
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    def update_then_next(*inputs):
        update()
        return forward_backward(*inputs)

    following = replay.compile(update_then_next) if compile else update_then_next
    for step in range(steps):
        value = (following(*inputs) if step else forward_backward(*inputs)).item()
        yield step, value
        if not math.isfinite(value):
            return
    if steps > 0:
        update()


def _train(model, x, y, config, clip, lr):
    """Full-batch SGD; stops early once the loss is no longer finite."""
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
    losses, initial_samples = [], {}

    def loss_of(x, y):
        return F.cross_entropy(model(x), y)

    with Monitor(model, every=config.record_every) as monitor:
        for step, loss in train_steps(
            loss_of, (x, y), optimizer, config.steps, clip, config.compile
        ):
            monitor.step()
            if step == 0:
                initial_samples = dict(monitor.samples)
            losses.append(loss)
    return monitor, losses, initial_samples


def evaluate(model, x, y):
    """``(loss, accuracy)`` of ``model`` on ``(x, y)``, both from one forward pass."""
    with no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        accuracy = float((logits.argmax(1)._array == y._array).mean())
    return loss, accuracy


def run_one(x, y, classes, activation, scheme, config, clip=None, depth=None, lr=None):
    """Train one network and return its :class:`RunResult` (``lr`` defaults to
    ``config.lr``)."""
    scheme = _SCHEMES[scheme] if isinstance(scheme, str) else scheme
    depth = depth or config.depth
    lr = lr or config.lr
    start = time.perf_counter()
    # Overflow is one of the outcomes under study (large weights): it shows up as an
    # infinite loss and a 'nan' verdict, not as warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        model = _build(
            x, classes, activation, scheme, config, depth, np.random.default_rng(config.seed)
        )
        monitor, losses, initial_samples = _train(model, x, y, config, clip, lr)
        final_loss, accuracy = evaluate(model, x, y)
    if math.isfinite(losses[-1]):  # else the weights are those of the last loss already
        losses.append(final_loss)
    verdict = monitor.verdict(step=0)
    at_init = [r for r in monitor.records if r.step == 0]
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
        lr=lr,
    )


@dataclass(frozen=True)
class RunSpec:
    """One planned run: what :func:`run_one` is called with."""

    activation: str
    scheme: str
    clip: float | None
    depth: int
    lr: float

    @property
    def label(self):
        return f"{self.activation} + {self.scheme}" + (
            f" + clip {self.clip:g}" if self.clip else ""
        )


def plan(config):
    """The runs of the study, in order, as :class:`RunSpec`."""
    runs = [RunSpec(a, s.key, None, config.depth, config.lr) for a in ACTIVATIONS for s in SCHEMES]
    runs += [RunSpec(a, "large", config.clip, config.depth, config.lr) for a in ACTIVATIONS]
    runs += [
        RunSpec("relu", key, None, config.deep_depth, config.deep_lr) for key in ("xavier", "he")
    ]
    return runs


@dataclass(frozen=True)
class Check:
    """One number a finding states (``statement``) and whether it is what the finding needs."""

    statement: str
    holds: bool


@dataclass
class Finding:
    """A claim about initialization, checked on the study's own numbers: it holds when every
    :class:`Check` does, and its evidence is the checks' statements, so it states no number
    it does not test."""

    title: str
    explanation: str
    checks: list

    @property
    def holds(self):
        return bool(self.checks) and all(c.holds for c in self.checks)

    @property
    def evidence(self):
        return "; ".join(c.statement for c in self.checks)


@dataclass
class Study:
    config: StudyConfig
    results: list
    findings: list
    seconds: float
    classes: int = 3

    @property
    def chance(self):
        """The accuracy of a uniform guess, ``1 / classes``."""
        return 1.0 / self.classes

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
        for k, spec in enumerate(runs):
            if progress:
                progress(k, len(runs), spec.label)
            results.append(
                run_one(
                    x,
                    y,
                    classes,
                    spec.activation,
                    spec.scheme,
                    config,
                    spec.clip,
                    spec.depth,
                    spec.lr,
                )
            )
    if progress:
        progress(len(runs), len(runs), "done")
    study = Study(config, results, [], time.perf_counter() - start, classes)
    study.findings = findings(study)
    return study


# ----------------------------------------------------------------------------------------
# The rules a finding applies to a run's numbers, one place each.

LOSS_FALLS = 0.7  # a run trains when its final loss is below 70% of its first ...
LOSS_FLAT = 0.9  # ... and stalls when it stays above 90% of it
SATURATED = 0.25  # "units saturate": more than a quarter of them at step 0
ACCURACY_GAP = 0.2  # a run that trains beats one that stalls by 20 points of accuracy
THRESHOLDS = Thresholds()  # the Monitor's default vanishing/exploding ratios


def _fmt_ratio(r):
    return "nan" if r is None or not math.isfinite(r) else f"{r:.1e}"


def _loss(r):
    return f"loss {r.first_loss:.3g} -> {r.final_loss:.3g}" + (" (diverged)" if r.diverged else "")


def well_above_chance(accuracy, chance):
    """At least halfway from a uniform guess to perfect: ``accuracy >= (1 + chance) / 2``."""
    return accuracy >= (1 + chance) / 2


def loss_falls(r):
    """The loss stayed finite and ended below ``LOSS_FALLS`` times where it started."""
    return not r.diverged and r.final_loss < LOSS_FALLS * r.first_loss


def loss_flat(r):
    """The loss stayed finite and ended above ``LOSS_FLAT`` times where it started."""
    return not r.diverged and r.final_loss > LOSS_FLAT * r.first_loss


def vanishing(r, thresholds=THRESHOLDS):
    """The first layer's gradient is below ``thresholds.vanishing`` times the last's."""
    return r.grad_ratio is not None and r.grad_ratio < thresholds.vanishing


def exploding(r, thresholds=THRESHOLDS):
    """The first layer's gradient is above ``thresholds.exploding`` times the last's, or
    not finite."""
    return r.grad_ratio is not None and (
        not math.isfinite(r.grad_ratio) or r.grad_ratio > thresholds.exploding
    )


def healthy(r, thresholds=THRESHOLDS):
    """The first layer's gradient is within the thresholds of the last layer's."""
    return (
        r.grad_ratio is not None
        and math.isfinite(r.grad_ratio)
        and thresholds.vanishing <= r.grad_ratio <= thresholds.exploding
    )


def check_trains(r, chance):
    """The checks of "``r`` trains": its loss falls and its accuracy is well above chance."""
    return [
        Check(f"{_loss(r)} (needs below {LOSS_FALLS:g}x the start)", loss_falls(r)),
        Check(
            f"accuracy {r.accuracy:.0%} (needs {(1 + chance) / 2:.0%}, halfway from chance "
            "to 100%)",
            well_above_chance(r.accuracy, chance),
        ),
    ]


# ----------------------------------------------------------------------------------------
# The findings: each takes a Study and returns a Finding.


def finding_zero_symmetry(study):
    width = study.config.width
    zeros = [study.get(a, "zeros") for a in ACTIVATIONS]
    xavier = [study.get(a, "xavier") for a in ACTIVATIONS]
    return Finding(
        "Zero weights keep every hidden unit of a layer identical",
        "With all weights equal, every unit of a layer computes the same output and gets "
        "the same gradient, so no training step can tell them apart: each layer behaves "
        "like a single unit. Random weights break the symmetry, and then zero biases are "
        "harmless (every run here starts its biases at zero).",
        [
            Check(
                "distinct hidden units per layer after training with zero weights: "
                + ", ".join(f"{r.activation} {max(r.distinct_units)}" for r in zeros),
                all(max(r.distinct_units) == 1 for r in zeros),
            ),
            Check(
                "with Xavier weights and zero biases: "
                + ", ".join(f"{r.activation} {min(r.distinct_units)}" for r in xavier)
                + f" of {width}",
                all(min(r.distinct_units) == width for r in xavier),
            ),
        ],
    )


def finding_small_vanish(study):
    t = THRESHOLDS
    return Finding(
        "Small random weights make the gradient vanish toward the input (sigmoid, tanh)",
        "Each layer multiplies the back-propagated gradient by its weights (times the "
        "activation's slope): with N(0, 0.01²) weights that is a factor far below 1 per "
        "layer, compounded over the depth, so the first layers barely learn.",
        [
            Check(
                f"{r.activation}: first/last layer gradient {_fmt_ratio(r.grad_ratio)} "
                f"(needs below {t.vanishing:g})",
                vanishing(r, t),
            )
            for r in (study.get(a, "small") for a in ("sigmoid", "tanh"))
        ],
    )


def finding_large_explode(study):
    t = THRESHOLDS
    checks = []
    for r in (study.get(a, "large") for a in ACTIVATIONS):
        explodes = f"first/last gradient {_fmt_ratio(r.grad_ratio)} (needs above {t.exploding:g})"
        saturated = f"{r.saturated or 0:.0%} of units saturated (needs above {SATURATED:.0%})"
        if exploding(r, t):
            checks.append(Check(f"{r.activation}: {explodes}", True))
        elif (r.saturated or 0) > SATURATED:
            checks.append(Check(f"{r.activation}: {saturated}", True))
        else:
            checks.append(Check(f"{r.activation}: neither {explodes} nor {saturated}", False))
    return Finding(
        "Large random weights make gradients explode or units saturate",
        "N(0, 1) weights multiply the signal's scale by about sqrt(fan_in) per layer. "
        "Sigmoid and tanh are pushed onto their flat tails (a saturated unit, output "
        "within 0.01 of an asymptote, passes almost no gradient); where the slope survives "
        "(ReLU, and tanh's steep centre) the backward pass grows by the same factor per "
        "layer and the gradient explodes.",
        checks,
    )


def finding_clipping(study):
    cfg = study.config
    plain = study.get("relu", "large")
    clipped = study.get("relu", "large", clip=cfg.clip)
    uniform = math.log(study.classes)
    return Finding(
        "Gradient clipping tames the explosion, and does not fix the initialization",
        "Rescaling the gradient to a maximum norm bounds every step, so exploding gradients "
        "can no longer throw the weights to infinity; it does not give the layers a scale "
        "that suits them, so the run survives without training well.",
        [
            Check(
                f"ReLU, N(0, 1), without clipping: {_loss(plain)} (needs to diverge or not fall)",
                plain.diverged or plain.final_loss >= plain.first_loss,
            ),
            Check(
                f"with clip_grad_norm_({cfg.clip:g}): {_loss(clipped)} (needs finite and falling)",
                not clipped.diverged and clipped.final_loss < clipped.first_loss,
            ),
            Check(
                f"final loss {clipped.final_loss:.3g} (needs above ln {study.classes} = "
                f"{uniform:.2f}, a uniform guess's: survived, not fixed)",
                clipped.final_loss > uniform,
            ),
        ],
    )


def _finding_matched(study, activation, key, title, why):
    t = THRESHOLDS
    r = study.get(activation, key)
    return Finding(
        title,
        why + f" Healthy here means the first layer's gradient within a factor "
        f"{1 / t.vanishing:g} of the last layer's.",
        [
            Check(
                f"{r.label}: first/last gradient {_fmt_ratio(r.grad_ratio)} (needs "
                f"{t.vanishing:g} to {t.exploding:g})",
                healthy(r, t),
            ),
            *check_trains(r, study.chance),
        ],
    )


def finding_xavier_tanh(study):
    return _finding_matched(
        study,
        "tanh",
        "xavier",
        "Xavier keeps tanh healthy",
        "Xavier's variance 2 / (fan_in + fan_out) keeps the signal's variance (and the "
        "gradient's, going back) about constant through layers that are linear around 0, "
        "as tanh is.",
    )


def finding_he_relu(study):
    return _finding_matched(
        study,
        "relu",
        "he",
        "He keeps ReLU healthy",
        "ReLU zeroes half of its input, halving the signal's second moment at every layer; "
        "He's variance 2 / fan_in doubles it back, so signal and gradient keep their scale.",
    )


def finding_deep_relu(study):
    cfg = study.config
    deep_x = study.get("relu", "xavier", depth=cfg.deep_depth)
    deep_h = study.get("relu", "he", depth=cfg.deep_depth)
    return Finding(
        f"At {cfg.deep_depth} ReLU layers He trains while Xavier stalls (He et al. 2015)",
        f"Under Xavier each ReLU layer halves the signal's second moment: after "
        f"{cfg.deep_depth} layers the signal and its gradient have shrunk by about "
        f"2^-{cfg.deep_depth} and SGD cannot move the loss (tiny differences between the "
        "logits can still put the argmax above chance). He's factor 2 compensates exactly. "
        f"Both train with lr {deep_h.lr:g}.",
        [
            *(Check(f"He: {c.statement}", c.holds) for c in check_trains(deep_h, study.chance)),
            Check(
                f"Xavier: {_loss(deep_x)} (needs above {LOSS_FLAT:g}x the start)",
                loss_flat(deep_x),
            ),
            Check(
                f"Xavier: accuracy {deep_x.accuracy:.0%} (needs {ACCURACY_GAP * 100:.0f} "
                "points below He's)",
                deep_x.accuracy <= deep_h.accuracy - ACCURACY_GAP,
            ),
        ],
    )


FINDINGS = (
    finding_zero_symmetry,
    finding_small_vanish,
    finding_large_explode,
    finding_clipping,
    finding_xavier_tanh,
    finding_he_relu,
    finding_deep_relu,
)


def findings(study):
    """Check the classic claims on the measured numbers: one :class:`Finding` per rule of
    :data:`FINDINGS`, each saying whether it held, why it should, and the numbers that
    decide it."""
    return [rule(study) for rule in FINDINGS]
