"""Per-layer activation and gradient statistics, and vanishing/exploding verdicts.

:class:`Monitor` attaches forward hooks to a model's leaf modules and, on each forward and
backward pass, records per *layer* (a module with a weight, Linear or Conv2d, together with
the parameter-free modules that follow it: its activation, pooling, flatten):

- activation mean and std of the layer's output, and of its pre-activation;
- the fraction of **saturated** units (Sigmoid outputs below 0.01 or above 0.99, Tanh
  outputs with ``|y| > 0.99``: there the derivative is nearly 0) and of **dead** units
  (ReLU features that are 0 for every sample of the batch);
- norm, std and RMS of the gradient reaching the layer's output, norm and RMS of the
  weight's gradient, the weight's norm and the update-to-weight ratio
  ``||W_t - W_{t-1}|| / ||W_{t-1}||`` between two recorded steps.

**Classification.**  A layer's gradient is judged *relative to the output layer*:

    ratio = rms(gradient at the layer's output) / rms(gradient at the last layer's output)

``ratio < thresholds.vanishing`` (default 1e-2) is *vanishing*, ``ratio >
thresholds.exploding`` (default 1e2) is *exploding*, in between *healthy*; NaN or Inf is
its own class.  The ratio is scale-free (the loss's scale cancels) and size-free (RMS is a
per-element measure), so it measures exactly what backpropagation does to the signal on its
way to the input: the product of the layers' Jacobians.  Two decades either side of the
output layer keeps a well-initialised deep network (He init with ReLU drifts by less than
a factor 10 over 100 layers of width 64) healthy, while the textbook failures land far
outside (a 30-layer sigmoid MLP with N(0, 1) weights: about 1e-4 at the input at width 32;
ReLU with N(0, 4/fan_in) weights: about 1e4).  The weight gradients get the same ratio,
against the last layer's weight gradient (``weight_grad_ratio``).

**Theory.**  Beside the measured stds, :meth:`Monitor.summary` prints what mean-field
signal propagation (Poole et al. 2016, Schoenholz et al. 2017; the argument of Glorot &
Bengio 2010 and He et al. 2015) predicts from the fans, the weights' variance and the
activation, starting from the measured input and propagated layer by layer::

    q_l            = fan_in * Var[W_l] * E[x_{l-1}^2] + E[b_l^2]        (pre-activation)
    E[x_l^2]       = E[phi(z)^2],  z ~ N(0, q_l)                        (activation)
    Var[g_{l-1}]   = fan_out * Var[W_l] * E[phi'(z)^2] * Var[g_l]       (backward, from
                                                                         the last layer)

so a user sees where reality departs from the initialisation's promise.  ``Var[W]`` is the
weight's current empirical variance (at step 0 the variance the init drew).

    with Monitor(model) as mon:
        for x, y in batches:
            loss = loss_fn(model(x), y)
            opt.zero_grad(); loss.backward()
            mon.step()                     # once per training step, after backward
            opt.step()
    print(mon.summary()); print(mon.verdict())
    mon.to_csv("stats.csv")
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from ._io import atomic_write
from .init import _calculate_fan_in_and_fan_out, calculate_gain
from .tensor import Tensor

__all__ = [
    "Thresholds",
    "classify",
    "Monitor",
    "Verdict",
    "VANISHING",
    "HEALTHY",
    "EXPLODING",
    "NONFINITE",
    "MISSING",
    "SATURATING",
    "RECTIFIERS",
    "recommended_init",
]

VANISHING, HEALTHY, EXPLODING, NONFINITE, MISSING = (
    "vanishing",
    "healthy",
    "exploding",
    "nan",
    "none",
)

# Activation modules whose outputs saturate, and the test for "near an asymptote".
SATURATING = {
    "Sigmoid": lambda y: (y < 0.01) | (y > 0.99),
    "Tanh": lambda y: np.abs(y) > 0.99,
    "Hardtanh": lambda y: np.abs(y) >= 1.0,
    "Softsign": lambda y: np.abs(y) > 0.99,
}
# Activation modules whose units can die (output 0 for every input).
RECTIFIERS = {"ReLU", "ReLU6"}


@dataclass(frozen=True)
class Thresholds:
    """Where vanishing and exploding start, as ratios to the reference (output) layer.

    ``vanishing=1e-2`` and ``exploding=1e2`` are the defaults: a layer whose gradient is
    100 times smaller (larger) than the output layer's is vanishing (exploding).
    """

    vanishing: float = 1e-2
    exploding: float = 1e2

    def __post_init__(self):
        v, e = self.vanishing, self.exploding
        for name, value in (("vanishing", v), ("exploding", e)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"Thresholds: {name} must be a positive finite number, got {value!r}"
                )
        if not v < 1.0 < e:
            raise ValueError(
                f"Thresholds: need vanishing < 1 < exploding, got vanishing={v!r}, exploding={e!r}"
            )

    def classify(self, ratio):
        """``'vanishing'``, ``'healthy'``, ``'exploding'``, ``'nan'`` or ``'none'`` (no ratio)."""
        if ratio is None:
            return MISSING
        if not math.isfinite(ratio):
            return NONFINITE
        if ratio < self.vanishing:
            return VANISHING
        if ratio > self.exploding:
            return EXPLODING
        return HEALTHY


def classify(ratio, thresholds=None):
    """Classify a gradient-magnitude ratio (see :class:`Thresholds`)."""
    return (thresholds or Thresholds()).classify(ratio)


def _as_thresholds(thresholds):
    if thresholds is None:
        return Thresholds()
    if isinstance(thresholds, Thresholds):
        return thresholds
    if isinstance(thresholds, (tuple, list)) and len(thresholds) == 2:
        return Thresholds(*thresholds)
    raise TypeError(
        f"thresholds must be a Thresholds or a (vanishing, exploding) pair, got "
        f"{type(thresholds).__name__}"
    )


# ----------------------------------------------------------------------------------------
# Statistics of arrays


def _finite(a):
    return bool(np.isfinite(a).all())


def _rms(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def _norm(a):
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def _ratio(value, reference):
    if value is None or reference is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference)):
        return math.nan
    if reference == 0:
        return None if value == 0 else math.inf
    return value / reference


# ----------------------------------------------------------------------------------------
# Activations as numpy functions, for the mean-field predictions


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


_ERF = np.vectorize(math.erf, otypes=[float])


def _activation_fn(module):
    """numpy function of an elementwise activation module, None when unknown."""
    name = type(module).__name__
    slope = float(getattr(module, "negative_slope", 0.01))
    alpha = float(getattr(module, "alpha", 1.0))
    beta = float(getattr(module, "beta", 1.0))
    table = {
        "Identity": lambda z: z,
        "ReLU": lambda z: np.maximum(z, 0.0),
        "ReLU6": lambda z: np.clip(z, 0.0, 6.0),
        "LeakyReLU": lambda z: np.where(z > 0, z, slope * z),
        "Sigmoid": _sigmoid,
        "Tanh": np.tanh,
        "Hardtanh": lambda z: np.clip(z, -1.0, 1.0),
        "Softsign": lambda z: z / (1 + np.abs(z)),
        "GELU": lambda z: 0.5 * z * (1.0 + _ERF(z / math.sqrt(2.0))),
        "SiLU": lambda z: z * _sigmoid(z),
        "ELU": lambda z: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))),
        "SELU": lambda z: (
            1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * np.expm1(np.minimum(z, 0)))
        ),
        "Softplus": lambda z: np.logaddexp(0.0, beta * z) / beta,
    }
    return table.get(name)


# Modules that do not change the second moment (for the predictions).
_PASS_THROUGH = {"Flatten", "Dropout", "Identity", "Unflatten"}

_GRID = np.linspace(-8.0, 8.0, 4001)
_WEIGHTS = np.exp(-0.5 * _GRID**2)
_WEIGHTS /= _WEIGHTS.sum()


def _gaussian_moments(fn, q):
    """E[f(z)], E[f(z)^2], E[f'(z)^2] for z ~ N(0, q) (dense quadrature, kinks are fine)."""
    s = math.sqrt(max(q, 0.0))
    z = s * _GRID
    h = 1e-4 * max(1.0, s)
    with np.errstate(all="ignore"):
        y = fn(z)
        dy = (fn(z + h) - fn(z - h)) / (2 * h)
    return (
        float(np.sum(_WEIGHTS * y)),
        float(np.sum(_WEIGHTS * y * y)),
        float(np.sum(_WEIGHTS * dy * dy)),
    )


def recommended_init(activation):
    """The init that matches an activation (by its module class name), as advice text."""
    if activation in ("ReLU", "ReLU6", "GELU", "SiLU", "ELU", "Softplus"):
        return "kaiming_normal (He: std = sqrt(2 / fan_in))"
    if activation == "LeakyReLU":
        return "kaiming_normal with a=negative_slope (std = sqrt(2 / ((1 + a^2) fan_in)))"
    if activation == "Tanh":
        return (
            "xavier_normal with gain=calculate_gain('tanh') (Glorot: "
            "std = 5/3 * sqrt(2 / (fan_in + fan_out)))"
        )
    if activation == "Sigmoid":
        return (
            "xavier_normal (Glorot: std = sqrt(2 / (fan_in + fan_out))) for a few layers; "
            "sigmoid's slope is at most 1/4 and its output is not centred, so deep "
            "sigmoid stacks vanish under any such init (Glorot & Bengio 2010): prefer "
            "tanh or ReLU"
        )
    if activation == "SELU":
        return "lecun_normal (std = sqrt(1 / fan_in))"
    return "xavier_normal or lecun_normal (std ~ sqrt(1 / fan_in))"


def _gain_for(activation, module=None):
    names = {
        "ReLU": "relu",
        "ReLU6": "relu",
        "Tanh": "tanh",
        "Sigmoid": "sigmoid",
        "SELU": "selu",
        "GELU": "relu",
        "SiLU": "relu",
        "ELU": "relu",
    }
    if activation == "LeakyReLU":
        return calculate_gain("leaky_relu", float(getattr(module, "negative_slope", 0.01)))
    return calculate_gain(names.get(activation, "linear"))


# ----------------------------------------------------------------------------------------
# The monitor


def _first_tensor(value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, Tensor):
                return v
    return None


def _is_weighted(module):
    w = getattr(module, "_parameters", {}).get("weight")
    return isinstance(w, Tensor) and w.ndim >= 2


class _Layer:
    """One monitored layer: a weighted head module and the modules that follow it."""

    def __init__(self, index, names, modules):
        self.index = index
        self.names = names
        self.modules = modules

    @property
    def head(self):
        return self.modules[0]

    @property
    def name(self):
        return self.names[0] or type(self.head).__name__

    @property
    def kind(self):
        return type(self.head).__name__

    @property
    def activation(self):
        return "+".join(type(m).__name__ for m in self.modules[1:])

    @property
    def weight(self):
        return self.head._parameters.get("weight") if _is_weighted(self.head) else None

    def describe(self):
        w = self.weight
        if w is None:
            return self.kind
        if w.ndim == 2:
            return f"{self.kind}({w.shape[1]}->{w.shape[0]})"
        k = "x".join(str(n) for n in w.shape[2:])
        return f"{self.kind}({w.shape[1]}->{w.shape[0]}, {k})"


class Monitor:
    """Record per-layer statistics of a model on every forward/backward pass.

    ``Monitor(model)`` registers one forward hook per leaf module (and, on each forward,
    one tensor hook on the module's output to see its gradient); the hooks only read, so
    results and gradients are unchanged.  Call :meth:`step` once per training step, after
    ``backward()``; it turns what the hooks saw into one record per layer.  If a module
    runs several times in a step, its last call counts.  :meth:`close` (or leaving a
    ``with`` block) removes every hook.

    ``thresholds``: a :class:`Thresholds` (or ``(vanishing, exploding)``);
    ``sample_size``: how many activation values per layer are kept from the last step for
    histograms (0 keeps none); ``every``: record steps 0, every, 2*every, ... only (on the
    other steps the hooks return at once and :meth:`step` just counts), so a long training
    run can be watched cheaply.  The update-to-weight ratio then spans ``every`` steps.
    """

    def __init__(self, model, thresholds=None, sample_size=4096, every=1):
        if not (
            callable(getattr(model, "named_modules", None))
            and callable(getattr(model, "register_forward_hook", None))
        ):
            raise TypeError(f"Monitor: model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.thresholds = _as_thresholds(thresholds)
        self.sample_size = int(sample_size)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Monitor: every must be a positive int, got {every!r}")
        self.every = every
        self.records = []
        self.samples = {}
        self._handles = []
        self._tensor_handles = []
        self._order = []
        self._pending = {}
        self._layers = None
        self._prev_weights = {}
        self._steps = 0
        self._closed = False
        leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
        self._names = {id(m): n for n, m in leaves}
        for name, module in leaves:
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))

    # -- hooks ------------------------------------------------------------------------
    def _forward_hook(self, name):
        def idle():
            return self._closed or self._steps % self.every != 0

        def hook(module, args, output):
            if idle():
                return None
            out = _first_tensor(output)
            if out is None:
                return None
            if name not in self._pending and name not in self._order:
                self._order.append(name)
                self._layers = None
            entry = {"module": module, "out": self._activation_stats(module, out._array)}
            x = _first_tensor(args)
            if x is not None:
                xd = np.asarray(x._array, dtype=np.float64)
                entry["in_ms"] = float(np.mean(xd * xd)) if xd.size else 0.0
            if out.requires_grad:
                self._tensor_handles.append(out.register_hook(self._grad_hook(entry)))
            self._pending[name] = entry
            return None

        hook.compile_guard = idle  # tg.compile replays only the steps the Monitor skips
        return hook

    def _grad_hook(self, entry):
        def hook(grad):
            g = grad._array if isinstance(grad, Tensor) else np.asarray(grad)
            entry["grad"] = {
                "norm": _norm(g),
                "std": float(np.std(g)),
                "rms": _rms(g),
                "finite": _finite(g),
            }
            return None

        return hook

    def _activation_stats(self, module, y):
        y64 = np.asarray(y, dtype=np.float64)
        kind = type(module).__name__
        stats = {
            "mean": float(np.mean(y64)),
            "std": float(np.std(y64)),
            "ms": float(np.mean(y64 * y64)),
            "finite": _finite(y64),
            "shape": tuple(y.shape),
        }
        if kind in SATURATING:
            stats["saturated"] = float(np.mean(SATURATING[kind](y64)))
        if kind in RECTIFIERS and y.ndim >= 1 and y.shape[0] > 0:
            alive = np.any(y64.reshape(y.shape[0], -1) != 0, axis=0)
            stats["dead"] = float(1.0 - np.mean(alive)) if alive.size else 0.0
        if self.sample_size > 0:
            flat = y64.ravel()
            if flat.size > self.sample_size:
                idx = np.linspace(0, flat.size - 1, self.sample_size).astype(np.int64)
                flat = flat[idx]
            stats["sample"] = flat.astype(np.float32)
        return stats

    # -- layers -----------------------------------------------------------------------
    def _build_layers(self):
        modules = {n: m for n, m in self.model.named_modules()}
        groups = []
        for name in self._order:
            m = modules.get(name)
            if m is None:
                continue
            if _is_weighted(m) or not groups:
                groups.append(([name], [m]))
            else:
                groups[-1][0].append(name)
                groups[-1][1].append(m)
        return [_Layer(i, names, mods) for i, (names, mods) in enumerate(groups)]

    @property
    def layers(self):
        """Names of the monitored layers in forward order (known after one forward)."""
        if self._layers is None:
            self._layers = self._build_layers()
        return [layer.name for layer in self._layers]

    @property
    def steps(self):
        """How many steps :meth:`step` has counted (recorded or skipped by ``every``)."""
        return self._steps

    # -- recording --------------------------------------------------------------------
    def step(self):
        """Close the current step: one record per layer is appended and returned.

        Call it after ``backward()``.  The update-to-weight ratio compares the weights now
        with the weights at the previous recorded step.  On the steps that ``every`` skips
        it only counts and returns an empty list.
        """
        if self._steps % self.every:
            self._steps += 1
            return []
        if self._layers is None:
            self._layers = self._build_layers()
        step = self._steps
        recs = [self._layer_record(step, layer) for layer in self._layers]
        self._finish(recs)
        self.samples = {}
        for layer in self._layers:
            entry = self._pending.get(layer.names[-1])
            if entry is not None and "sample" in entry["out"]:
                self.samples[layer.name] = entry["out"]["sample"]
        for h in self._tensor_handles:
            h.remove()
        self._tensor_handles = []
        self._pending = {}
        self._steps += 1
        self.records.extend(recs)
        return recs

    def _layer_record(self, step, layer):
        head_entry = self._pending.get(layer.names[0])
        tail_entry = self._pending.get(layer.names[-1])
        w = layer.weight
        rec = {
            "step": step,
            "index": layer.index,
            "name": layer.name,
            "layer": layer.describe(),
            "activation": layer.activation,
        }
        fan_in = fan_out = None
        if w is not None:
            fan_in, fan_out = _calculate_fan_in_and_fan_out(w.shape)
        b = layer.head._parameters.get("bias") if w is not None else None
        wd = np.asarray(w._array, dtype=np.float64) if w is not None else None
        rec.update(
            fan_in=fan_in,
            fan_out=fan_out,
            weight_std=float(np.std(wd)) if wd is not None else None,
            weight_norm=_norm(wd) if wd is not None else None,
            weight_var=float(np.mean(wd * wd)) if wd is not None else None,
            bias_ms=(
                float(np.mean(np.asarray(b._array, dtype=np.float64) ** 2))
                if isinstance(b, Tensor) and b._array.size
                else 0.0
            ),
        )
        rec["gain"] = math.sqrt(fan_in * rec["weight_var"]) if w is not None else None
        g = w.grad if w is not None else None
        gd = np.asarray(g._array, dtype=np.float64) if g is not None else None
        rec["weight_grad_norm"] = _norm(gd) if gd is not None else None
        rec["weight_grad_rms"] = _rms(gd) if gd is not None else None
        rec["weight_grad_finite"] = _finite(gd) if gd is not None else True
        prev = self._prev_weights.get(layer.name)
        if wd is not None:
            if prev is not None and prev.shape == wd.shape:
                base = _norm(prev)
                rec["update_ratio"] = _norm(wd - prev) / base if base > 0 else None
            else:
                rec["update_ratio"] = None
            self._prev_weights[layer.name] = wd.copy()
        else:
            rec["update_ratio"] = None
        head = head_entry["out"] if head_entry else None
        tail = tail_entry["out"] if tail_entry else None
        rec["in_ms"] = head_entry.get("in_ms") if head_entry else None
        rec["preact_mean"] = head["mean"] if head else None
        rec["preact_std"] = head["std"] if head else None
        rec["act_mean"] = tail["mean"] if tail else None
        rec["act_std"] = tail["std"] if tail else None
        rec["act_ms"] = tail["ms"] if tail else None
        sat = dead = None
        finite = True
        for name in layer.names:
            e = self._pending.get(name)
            if e is None:
                continue
            finite = finite and e["out"]["finite"]
            if "saturated" in e["out"]:
                sat = e["out"]["saturated"]
            if "dead" in e["out"]:
                dead = e["out"]["dead"]
        rec["saturated"] = sat
        rec["dead"] = dead
        rec["act_finite"] = finite
        grad = tail_entry.get("grad") if tail_entry else None
        rec["grad_norm"] = grad["norm"] if grad else None
        rec["grad_std"] = grad["std"] if grad else None
        rec["grad_rms"] = grad["rms"] if grad else None
        rec["grad_finite"] = grad["finite"] if grad else True
        return rec

    def _finish(self, recs):
        """Ratios to the last layer, statuses and mean-field predictions."""
        ref = next((r["grad_rms"] for r in reversed(recs) if r["grad_rms"] is not None), None)
        wref = next(
            (r["weight_grad_rms"] for r in reversed(recs) if r["weight_grad_rms"] is not None), None
        )
        for r in recs:
            r["grad_ratio"] = _ratio(r["grad_rms"], ref)
            r["weight_grad_ratio"] = _ratio(r["weight_grad_rms"], wref)
            if not (r["grad_finite"] and r["weight_grad_finite"] and r["act_finite"]):
                r["status"] = NONFINITE
            else:
                ratio = r["grad_ratio"] if r["grad_ratio"] is not None else r["weight_grad_ratio"]
                r["status"] = self.thresholds.classify(ratio)
        self._predict(recs)

    def _predict(self, recs):
        layers = self._layers
        # forward: second moment of each layer's input, propagated from the measured input
        m_in = None
        qs = []
        for r, layer in zip(recs, layers):
            if m_in is None:
                m_in = r["in_ms"]
            q = None
            if r["weight_var"] is not None and m_in is not None:
                q = r["fan_in"] * r["weight_var"] * m_in + r["bias_ms"]
            qs.append(q)
            r["theory_preact_std"] = math.sqrt(q) if q is not None else None
            mean, ms = (0.0, q) if q is not None else (None, None)
            for m in layer.modules[1:]:
                if ms is None:
                    break
                kind = type(m).__name__
                fn = _activation_fn(m)
                if fn is not None:
                    e1, e2, _ = _gaussian_moments(fn, ms if mean == 0.0 else ms)
                    mean, ms = e1, e2
                elif kind not in _PASS_THROUGH:
                    ms = None
            r["theory_act_std"] = math.sqrt(max(ms - mean * mean, 0.0)) if ms is not None else None
            m_in = ms  # unknown module: re-anchor on the next measured input
        # backward: Var of the gradient at each layer's output, from the last layer down
        var = None
        for i in range(len(recs) - 1, -1, -1):
            r, layer = recs[i], layers[i]
            if var is None and r["grad_std"] is not None:
                var = r["grad_std"] ** 2
            r["theory_grad_std"] = math.sqrt(var) if var is not None else None
            if var is None or r["weight_var"] is None or qs[i] is None:
                var = None
                continue
            chi = 1.0
            for m in layer.modules[1:]:
                fn = _activation_fn(m)
                if fn is not None:
                    chi *= _gaussian_moments(fn, qs[i])[2]
                elif type(m).__name__ not in _PASS_THROUGH:
                    chi = None
                    break
            var = None if chi is None else r["fan_out"] * r["weight_var"] * chi * var

    # -- reading ----------------------------------------------------------------------
    def _last_step(self, step=None):
        if not self.records and self._pending:
            self.step()
        if not self.records:
            raise RuntimeError(
                "Monitor: nothing recorded yet: run a forward and backward "
                "pass through the model, then call mon.step()"
            )
        last = self.records[-1]["step"]
        s = last if step is None else (last + 1 + step if step < 0 else step)
        recs = [r for r in self.records if r["step"] == s]
        if not recs:
            raise ValueError(f"Monitor: no step {step}; recorded steps are 0..{last}")
        return recs

    def to_records(self):
        """Every record so far: a list of dicts, one per layer per step."""
        return [dict(r) for r in self.records]

    def to_csv(self, path):
        """Write :meth:`to_records` to ``path`` as CSV (atomically)."""
        recs = self.to_records()
        if not recs:
            raise RuntimeError("Monitor.to_csv: nothing recorded yet")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(recs[0]))
        writer.writeheader()
        for r in recs:
            writer.writerow({k: "" if v is None else v for k, v in r.items()})
        atomic_write(path, buffer.getvalue().encode("utf-8"), "to_csv")
        return path

    def summary(self, step=None):
        """A text table of the layers at ``step`` (default the last): measured beside theory.

        ``act std`` and ``grad std`` show ``measured / predicted`` (see the module
        docstring for the prediction); ``gain`` is ``sqrt(fan_in * Var[W])``, the gain the
        weights actually carry.
        """
        recs = self._last_step(step)
        header = [
            "#",
            "layer",
            "activation",
            "gain",
            "act std (meas/theory)",
            "grad std (meas/theory)",
            "grad ratio",
            "|dW|",
            "sat/dead",
            "status",
        ]
        rows = []
        for r in recs:
            satdead = ("" if r["saturated"] is None else f"sat {r['saturated']:.0%}") + (
                "" if r["dead"] is None else f"dead {r['dead']:.0%}"
            )
            rows.append(
                [
                    str(r["index"]),
                    f"{r['name']} {r['layer']}",
                    r["activation"] or "-",
                    format_number(r["gain"], ".2f"),
                    f"{format_number(r['act_std'])} / {format_number(r['theory_act_std'])}",
                    f"{format_number(r['grad_std'])} / {format_number(r['theory_grad_std'])}",
                    format_number(r["grad_ratio"]),
                    format_number(r["weight_grad_norm"]),
                    satdead or "-",
                    r["status"].upper()
                    if r["status"] in (VANISHING, EXPLODING, NONFINITE)
                    else r["status"],
                ]
            )
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines = [
            f"step {recs[0]['step']}: {len(recs)} layers, gradient ratio = grad rms / "
            f"last layer's (vanishing < {self.thresholds.vanishing:g}, exploding > "
            f"{self.thresholds.exploding:g})",
            "  ".join(h.ljust(w) for h, w in zip(header, widths)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)

    def verdict(self, step=None):
        """A :class:`Verdict` for ``step`` (default the last)."""
        return Verdict.from_records(self._last_step(step), self.thresholds, self._layers)

    # -- lifetime ---------------------------------------------------------------------
    def close(self):
        """Remove every hook this monitor registered (module and tensor hooks)."""
        for h in self._handles + self._tensor_handles:
            h.remove()
        self._handles = []
        self._tensor_handles = []
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (
            f"<Monitor of {type(self.model).__name__}: {len(self.layers)} layers, "
            f"{self._steps} steps{', closed' if self._closed else ''}>"
        )


def format_number(x, spec=".2e"):
    """``format(x, spec)``; '-' for a missing value, 'nan' / 'inf' for a non-finite one."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


# ----------------------------------------------------------------------------------------
# Verdicts


@dataclass
class Verdict:
    """What is wrong with the gradient flow, by how much, why, and what to do.

    ``status``: the worst class over the layers (``'nan'`` > ``'exploding'`` >
    ``'vanishing'`` > ``'healthy'``); ``vanishing`` / ``exploding`` / ``nonfinite``: the
    layer names in each class; ``ratio``: first layer's gradient RMS over the last's;
    ``per_layer``: the geometric-mean factor per layer; ``causes`` and ``remedies``: text.
    ``str(verdict)`` is a readable paragraph.
    """

    status: str
    vanishing: list
    exploding: list
    nonfinite: list
    ratio: float | None
    per_layer: float | None
    causes: list
    remedies: list
    headline: str = ""

    @classmethod
    def from_records(cls, recs, thresholds=None, layers=None):
        thresholds = _as_thresholds(thresholds)
        by = {
            s: [r["name"] for r in recs if r["status"] == s]
            for s in (VANISHING, EXPLODING, NONFINITE)
        }
        status = (
            NONFINITE
            if by[NONFINITE]
            else EXPLODING
            if by[EXPLODING]
            else VANISHING
            if by[VANISHING]
            else HEALTHY
        )
        with_grad = [r for r in recs if r["grad_rms"] is not None]
        ratio = per_layer = None
        if len(with_grad) >= 2:
            ratio = _ratio(with_grad[0]["grad_rms"], with_grad[-1]["grad_rms"])
            if ratio is not None and math.isfinite(ratio) and ratio > 0:
                per_layer = ratio ** (1.0 / (len(with_grad) - 1))
        activations = [r["activation"].split("+")[0] for r in recs if r["activation"]]
        act = max(set(activations), key=activations.count) if activations else ""
        act_module = None
        if layers is not None:
            for layer in layers:
                if len(layer.modules) > 1 and type(layer.modules[1]).__name__ == act:
                    act_module = layer.modules[1]
                    break
        needed = _gain_for(act, act_module)
        gains = [r["gain"] for r in recs[:-1] if r["gain"] is not None] or [
            r["gain"] for r in recs if r["gain"] is not None
        ]
        gain = float(np.median(gains)) if gains else None
        sats = [r["saturated"] for r in recs if r["saturated"] is not None]
        deads = [r["dead"] for r in recs if r["dead"] is not None]
        sat = float(np.mean(sats)) if sats else None
        dead = float(np.mean(deads)) if deads else None
        updates = [r["update_ratio"] for r in recs if r["update_ratio"] is not None]
        update = float(np.median(updates)) if updates else None
        causes, remedies = [], []
        init_advice = f"initialise with {recommended_init(act)}"
        gain_text = (
            f"the weights carry gain sqrt(fan_in * Var[W]) = {gain:.2f}, "
            f"{act or 'a linear layer'} needs about {needed:.2f}"
            if gain is not None
            else ""
        )
        if status == NONFINITE:
            causes.append(
                f"NaN/Inf in layers {_names(by[NONFINITE])}: an overflow or an "
                "invalid operation (log of 0, 0/0) in the forward or backward pass"
            )
            remedies += [
                "run the step under tg.autograd.detect_anomaly() to name the op",
                "lower the learning rate",
                "clip gradients with nn.utils.clip_grad_norm_",
            ]
        if by[EXPLODING]:
            if gain is not None and gain > needed * 1.1:
                causes.append(
                    f"weights too large for {act or 'the layers'}: {gain_text}, "
                    f"so each layer multiplies the gradient by about "
                    f"{per_layer:.2f}"
                    if per_layer
                    else gain_text
                )
            else:
                causes.append("the layers amplify the gradient on its way to the input")
            remedies += [
                init_advice,
                "clip gradients with nn.utils.clip_grad_norm_",
                "lower the learning rate",
            ]
        saturating = act in SATURATING and (
            (sat is not None and sat > 0.1) or (gain is not None and gain > needed * 1.5)
        )
        if by[VANISHING]:
            if saturating:
                causes.append(
                    f"saturation: weights too large for {act} ({gain_text}), so "
                    f"pre-activations are wide and "
                    f"{sat if sat is not None else 0:.0%} of the units sit near "
                    "their asymptotes, where the derivative is almost 0"
                )
            if dead is not None and dead > 0.2:
                causes.append(
                    f"dead units: {dead:.0%} of {act} units output 0 for the whole "
                    "batch and pass no gradient"
                )
                remedies.append("use LeakyReLU, or a smaller learning rate")
            if gain is not None and gain < needed / 1.1 and not saturating:
                causes.append(f"weights too small: {gain_text}, so each layer shrinks the gradient")
            if not causes:
                causes.append(
                    "the layers attenuate the gradient on its way to the input"
                    + (f" ({gain_text})" if gain_text else "")
                )
            remedies.insert(0, init_advice)
            if act in ("Sigmoid", "Tanh"):
                remedies.append("or switch to ReLU with He init (no saturation)")
        if update is not None:
            if update > 1e-2:
                causes.append(
                    f"large updates: the median update-to-weight ratio is "
                    f"{update:.1e} (about 1e-3 is typical)"
                )
                remedies.append("lower the learning rate")
            elif update < 1e-5:
                causes.append(
                    f"tiny updates: the median update-to-weight ratio is "
                    f"{update:.1e} (about 1e-3 is typical)"
                )
                remedies.append("raise the learning rate")
        remedies = list(dict.fromkeys(remedies))
        where = "toward the input"
        if status == HEALTHY:
            headline = "gradients are healthy in every layer"
        elif status == NONFINITE:
            headline = f"NaN/Inf gradients in {_names(by[NONFINITE])}"
        elif status == EXPLODING:
            headline = f"gradients explode {where} ({len(by[EXPLODING])} of {len(recs)} layers)"
        else:
            headline = f"gradients vanish {where} ({len(by[VANISHING])} of {len(recs)} layers)"
        if ratio is not None and math.isfinite(ratio):
            headline += f": first/last layer gradient = {ratio:.1e}"
        return cls(
            status,
            by[VANISHING],
            by[EXPLODING],
            by[NONFINITE],
            ratio,
            per_layer,
            causes,
            remedies,
            headline,
        )

    def __str__(self):
        lines = [self.headline[:1].upper() + self.headline[1:] + "."]
        if self.per_layer is not None and self.status != HEALTHY:
            lines.append(
                f"Each layer scales the gradient by about {self.per_layer:.3g} on its way back."
            )
        if self.vanishing:
            lines.append(f"Vanishing: {_names(self.vanishing)}.")
        if self.exploding:
            lines.append(f"Exploding: {_names(self.exploding)}.")
        for c in self.causes:
            lines.append(f"Cause: {c}.")
        for r in self.remedies:
            lines.append(f"Remedy: {r}.")
        return "\n".join(lines)


def _names(names, limit=8):
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    half = limit // 2
    return (
        ", ".join(names[:half])
        + f", ... ({len(names) - 2 * half} more) ..., "
        + ", ".join(names[-half:])
    )
