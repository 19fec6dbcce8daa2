#!/usr/bin/env python
"""Benchmark tinygrad_init against hand-written numpy and PyTorch eager.

    python tools/bench.py [--quick] [--threads N] [--json FILE] [--only NAME,...]
                          [--profile] [--check-only]

A numpy framework cannot beat numpy's own arithmetic, so the yardstick is ``numpy-hand``
(tools/bench_reference.py): the same training step with forward and backward derived by
hand.  Every workload is a full training step (forward, loss, backward, SGD update) in
float32 on fixed random data:

    tiny       MLP 32-64-64-10, relu, batch 16
    scalar     MLP 2-16-16-1, tanh, batch 32, mean-squared-error loss on a real target
    mnist      MLP 784-256-256-10, relu, batch 64
    deep       50 tanh layers of 64, batch 32
    wide       MLP 2048-2048-2048-10, relu, batch 256
    cnn        conv3x3 1->8, relu, maxpool2, conv3x3 8->16, relu, maxpool2, flatten,
               linear->10, cross-entropy; 28x28 images, batch 32
    chain      100,000 elementwise ops forward and backward (reported in us per op)
    inference  the mnist MLP forward under no_grad (numpy-hand: its plain forward)

Each workload but the chain is also timed through ``tg.compile`` (column ``compiled``):
the same step recorded once and replayed; ``comp/hand`` and ``comp/torch`` are its
ratios of medians.

Extra sections (also selectable with --only):

    memory     peak memory of the wide workload, one fresh process per framework
    startup    import plus first mnist step, one fresh process per framework
    gradcheck  tg.gradcheck full and fast mode on a tanh MLP of about 50,000 parameters
    jacobian   the input-output Jacobian of a 256-wide, 64-layer tanh MLP at one example:
               tinygrad_init.func.jacrev, jacfwd and a loop of one func.vjp per output,
               beside torch.func.jacrev (round-robin, medians); also one jvp against one
               vjp (forward plus one sweep each).  Checked against torch first.

Method.  Before anything is timed, the gradients (and loss) of tinygrad_init are checked
against numpy-hand on the same weights and data: every parameter must agree within a
relative error of 1e-5 (max |a - b| / max |b|), else the script exits with status 1.
Then the frameworks run in the same process, interleaved round-robin (the order rotates
every round) after a warm-up; each sample times a batch of steps, and the table shows the
median per step, the ratios of medians (the targets are judged on these), the ratio of
the 10th percentiles (steadier on a busy machine), and the spread as the interquartile
range over the median.  BLAS and OpenMP threads are pinned to the same number for every framework
(1 by default): the *_NUM_THREADS variables are set before numpy is imported, threadpoolctl
limits the loaded libraries when it is installed, and torch.set_num_threads is called.
PyTorch is optional; without it the table says so.

Memory: each framework runs 3 wide steps in a fresh process.  ``traced`` is the peak of
tracemalloc during those steps, counting every numpy buffer alive (weights, data,
gradients, activations, temporaries); numpy reports its buffers to tracemalloc, PyTorch
does not, so torch has no traced figure.  ``rss`` is the peak resident set size during the
steps (VmHWM, reset after the model is built where /proc allows, else ru_maxrss) minus
the resident size measured before the model is built (after the imports and one step of
the tiny MLP, which lets each library do its lazy set-up first).  The memory target uses ``traced``.

Startup: seconds from the start of the script (before numpy is imported) to the end of
the first mnist training step, in a fresh process: importing numpy and the framework,
building the model and the data, one step.  The process wall time is shown beside it.

Environment.  On some processors OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are set because
older OpenBLAS builds compute wrong results there; they slow a current numpy down.  Tests
and CI leave them alone.  For benchmarking one may unset both together for that one
command, e.g. ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/bench.py``, and
check in the printed environment which kernel OpenBLAS then runs (threadpoolctl's
architecture field).  The printed environment shows their values.

--quick runs few iterations on smaller sizes (wide 512-512-512-10 batch 64, cnn batch 8,
chain 2,000 ops, gradcheck on ~600 parameters): it proves the script works and that
the cross-check passes, in well under 30 s; its figures are not the benchmark.
"""

from __future__ import annotations

import os
import sys
import time

_T0 = time.perf_counter()

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _threads_from_argv(argv):
    """The --threads value, read before argparse so the variables precede numpy's import."""
    for k, arg in enumerate(argv):
        if arg == "--threads" and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


if __name__ == "__main__":
    for _var in THREAD_VARS:
        os.environ[_var] = _threads_from_argv(sys.argv[1:])

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

_TOOLS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TOOLS)
for _path in (_TOOLS, _ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_reference as ref  # noqa: E402

WORKLOADS = ("tiny", "scalar", "mnist", "deep", "wide", "cnn", "chain", "inference")
SECTIONS = ("memory", "startup", "gradcheck", "jacobian")
HAND, TG, TORCH = "numpy-hand", "tinygrad_init", "torch"
COMPILED = "compiled"  # tinygrad_init's step through tg.compile (not for the chain)
FRAMEWORKS = (TG, HAND, TORCH)
TOLERANCE = 1e-5
LR = 0.01
SEED = 0

# Targets: workload -> ((measure, limit), ...).  A measure is a ratio of medians (HAND:
# tg/hand, TORCH: tg/torch, "compiled/hand", "compiled/torch") or, for the chain, its own
# median in its unit ("us/op").  The eager tiny/deep and every compiled limit, and the
# chain's, are the performance issue's; the others are the earlier ones, still kept.
TARGETS = {
    "tiny": ((HAND, 1.8), ("compiled/hand", 1.2)),
    "scalar": (("compiled/hand", 1.3),),
    "mnist": ((HAND, 1.15), ("compiled/hand", 1.05)),
    "deep": ((HAND, 1.5), ("compiled/hand", 1.15)),
    "wide": ((HAND, 1.05), ("compiled/hand", 1.02)),
    "cnn": ((TORCH, 1.3), ("compiled/torch", 0.9)),
    "chain": (("us/op", 5.0),),
    "inference": ((HAND, 1.05),),
    "memory": ((HAND, 1.3),),
}
_MEASURE_NAMES = {
    HAND: "tg/hand",
    TORCH: "tg/torch",
    "compiled/hand": "comp/hand",
    "compiled/torch": "comp/torch",
    "us/op": "tg us/op",
}


class CrossCheckError(Exception):
    """tinygrad_init and numpy-hand disagree: nothing may be timed."""


# ----------------------------------------------------------------------------------------
# Problem sizes, data and initial weights (numpy, shared by every framework)


def sizes(quick):
    """Every size the workloads use; --quick shrinks the expensive ones."""
    return {
        "tiny": dict(layers=[32, 64, 64, 10], batch=16, activation="relu"),
        "scalar": dict(layers=[2, 16, 16, 1], batch=32, activation="tanh", loss="mse"),
        "mnist": dict(layers=[784, 256, 256, 10], batch=64, activation="relu"),
        "deep": dict(layers=[64] * 51 + [10], batch=32, activation="tanh"),
        "wide": (
            dict(layers=[512, 512, 512, 10], batch=64, activation="relu")
            if quick
            else dict(layers=[2048, 2048, 2048, 10], batch=256, activation="relu")
        ),
        "cnn": dict(batch=8 if quick else 32),
        "chain": dict(n_ops=2_000 if quick else 100_000, width=16),
        "gradcheck": dict(layers=[8, 16, 16, 10] if quick else [64, 256, 128, 10], batch=4),
        "jacobian": dict(width=16 if quick else 256, depth=4 if quick else 64),
    }


def _uniform(rng, shape, bound, dtype=np.float32):
    return ((rng.random(shape, dtype=dtype) * 2 - 1) * bound).astype(dtype, copy=False)


def mlp_params(rng, layers, activation, dtype=np.float32):
    """[W1, b1, ...]: W ~ U(+-gain*sqrt(3/fan_in)), variance gain^2/fan_in; b ~ U(+-1/sqrt(fan_in)).

    gain is sqrt(2) before a relu (He) and 1 before a tanh (LeCun), 1 for the output layer.
    With tanh's own gain 5/3 the 50-layer tanh net is chaotic: its gradients explode and
    float32 rounding differences between two correct implementations grow past 1e-5.
    """
    gain = np.sqrt(2.0) if activation == "relu" else 1.0
    params = []
    for k, (fan_in, fan_out) in enumerate(zip(layers, layers[1:])):
        g = gain if k < len(layers) - 2 else 1.0
        params.append(_uniform(rng, (fan_out, fan_in), g * np.sqrt(3.0 / fan_in), dtype))
        params.append(_uniform(rng, (fan_out,), 1.0 / np.sqrt(fan_in), dtype))
    return params


def cnn_params(rng):
    params = []
    for shape in ((8, 1, 3, 3), (16, 8, 3, 3), (10, 400)):
        fan_in = int(np.prod(shape[1:]))
        gain = 1.0 if len(shape) == 2 else np.sqrt(2.0)
        params.append(_uniform(rng, shape, gain * np.sqrt(3.0 / fan_in)))
        params.append(_uniform(rng, shape[:1], 1.0 / np.sqrt(fan_in)))
    return params


def make_problem(name, quick):
    """Fixed random data and initial weights of workload ``name`` (numpy arrays)."""
    rng = np.random.default_rng(SEED)
    s = sizes(quick)
    if name in ("tiny", "scalar", "mnist", "deep", "wide", "inference"):
        spec = s["mnist" if name == "inference" else name]
        layers, batch = spec["layers"], spec["batch"]
        loss = spec.get("loss", "cross_entropy")
        x = rng.standard_normal((batch, layers[0]), dtype=np.float32)
        if loss == "mse":
            y = rng.standard_normal((batch, layers[-1]), dtype=np.float32)
        else:
            y = rng.integers(0, layers[-1], batch).astype(np.int64)
        return dict(
            kind="mlp",
            x=x,
            y=y,
            loss=loss,
            activation=spec["activation"],
            layers=layers,
            params=mlp_params(rng, layers, spec["activation"]),
        )
    if name == "cnn":
        batch = s["cnn"]["batch"]
        x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, batch).astype(np.int64)
        return dict(kind="cnn", x=x, y=y, params=cnn_params(rng))
    if name == "chain":
        spec = s["chain"]
        return dict(
            kind="chain",
            x=rng.standard_normal(spec["width"], dtype=np.float32),
            n_ops=spec["n_ops"],
        )
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


# ----------------------------------------------------------------------------------------
# Frameworks: tinygrad_init and PyTorch share the PyTorch API, so one set of builders
# serves both; the adapter only says how to make tensors and read them back.


class TinygradInit:
    name = TG

    def __init__(self):
        import tinygrad_init as tg
        from tinygrad_init import nn, optim

        self.tg, self.nn, self.optim = tg, nn, optim

    def tensor(self, array, requires_grad=False):
        return self.tg.tensor(array, requires_grad=requires_grad)

    def no_grad(self):
        return self.tg.no_grad()

    def numpy(self, t):
        return t.detach().numpy()

    def load(self, parameters, arrays):
        with self.no_grad():
            for p, a in zip(parameters, arrays, strict=True):
                p.copy_(self.tensor(a))


class Torch:
    name = TORCH

    def __init__(self, threads):
        import torch

        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # allowed once, before parallel work
            torch.set_num_interop_threads(threads)
        self.torch, self.nn, self.optim = torch, torch.nn, torch.optim

    def tensor(self, array, requires_grad=False):
        return self.torch.tensor(array, requires_grad=requires_grad)

    def no_grad(self):
        return self.torch.no_grad()

    def numpy(self, t):
        return t.detach().numpy()

    def load(self, parameters, arrays):
        with self.no_grad():
            for p, a in zip(parameters, arrays, strict=True):
                p.copy_(self.torch.from_numpy(a))


def torch_version():
    """PyTorch's version, or None when it is not installed (checked without importing it)."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_mlp(fw, layers, activation):
    nn = fw.nn
    modules = []
    for k, (fan_in, fan_out) in enumerate(zip(layers, layers[1:])):
        modules.append(nn.Linear(fan_in, fan_out))
        if k < len(layers) - 2:
            modules.append(nn.ReLU() if activation == "relu" else nn.Tanh())
    return nn.Sequential(*modules)


def build_cnn(fw):
    nn = fw.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    )


class FrameworkTrainer:
    """A model of tinygrad_init or PyTorch with its loss (cross-entropy, or MSE where the
    problem says so) and SGD, on fixed data."""

    def __init__(self, fw, model, problem):
        self.fw, self.model = fw, model
        self.parameters = list(model.parameters())
        fw.load(self.parameters, problem["params"])
        mse = problem.get("loss") == "mse"
        self.loss_fn = fw.nn.MSELoss() if mse else fw.nn.CrossEntropyLoss()
        self.opt = fw.optim.SGD(self.parameters, lr=LR)
        self.x, self.y = fw.tensor(problem["x"]), fw.tensor(problem["y"])

    def step(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer(self):
        with self.fw.no_grad():
            return self.model(self.x)

    def compiled(self, inference):
        """The step (or the forward under no_grad) through tg.compile, tinygrad_init only."""

        def step(x, y):
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.opt.step()

        if not inference:
            fn = self.fw.tg.compile(step)
            return lambda: fn(self.x, self.y)
        forward = self.fw.tg.compile(self.model)

        def infer():
            with self.fw.no_grad():
                return forward(self.x)

        return infer

    def gradients(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        return float(loss.item()), [self.fw.numpy(p.grad).copy() for p in self.parameters]

    def output(self):
        return self.fw.numpy(self.infer())


class FrameworkChain:
    """y = x; y = y * c or y + c for each op of the chain; y.sum().backward()."""

    def __init__(self, fw, problem):
        self.ops = ref.chain_ops(problem["n_ops"])
        self.x = fw.tensor(problem["x"], requires_grad=True)
        self.fw = fw

    def _run(self):
        self.x.grad = None
        y = self.x
        for kind, c in self.ops:
            y = y * c if kind == "mul" else y + c
        loss = y.sum()
        loss.backward()
        return loss

    def step(self):
        self._run()

    def gradients(self):
        loss = self._run()
        return float(loss.item()), [self.fw.numpy(self.x.grad).copy()]


class HandTrainer:
    """numpy-hand: the reference model of tools/bench_reference.py on the same data."""

    def __init__(self, problem):
        self.x, self.y = problem["x"], problem.get("y")
        if problem["kind"] == "mlp":
            self.model = ref.MLP(problem["params"], problem["activation"], LR, problem["loss"])
        elif problem["kind"] == "cnn":
            self.model = ref.CNN(problem["params"], LR)
        else:
            self.model = ref.Chain(problem["n_ops"])

    def step(self):
        if self.y is None:
            self.model.step(self.x)
        else:
            self.model.step(self.x, self.y)

    def infer(self):
        return self.model.forward(self.x)

    def gradients(self):
        if self.y is None:
            loss, grads = self.model.gradients(self.x)
        else:
            loss, grads = self.model.gradients(self.x, self.y)
        return float(loss), grads

    def output(self):
        return self.infer()


def make_trainer(framework, problem):
    if framework == HAND:
        return HandTrainer(problem)
    fw = framework
    if problem["kind"] == "chain":
        return FrameworkChain(fw, problem)
    if problem["kind"] == "cnn":
        return FrameworkTrainer(fw, build_cnn(fw), problem)
    return FrameworkTrainer(fw, build_mlp(fw, problem["layers"], problem["activation"]), problem)


# ----------------------------------------------------------------------------------------
# The gradient cross-check


def relative_error(got, want):
    """max |got - want| / max |want| (absolute when ``want`` is all zeros)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def compare(label, got, want, tol=TOLERANCE):
    """Compare (loss, [arrays]) pairs; returns (worst error, list of problems)."""
    (got_loss, got_arrays), (want_loss, want_arrays) = got, want
    problems = []
    if len(got_arrays) != len(want_arrays):
        return float("inf"), [f"{label}: {len(got_arrays)} gradients, expected {len(want_arrays)}"]
    worst = relative_error(got_loss, want_loss) if want_loss is not None else 0.0
    if worst > tol:
        problems.append(f"{label}: loss {got_loss!r} != {want_loss!r}")
    for k, (g, w) in enumerate(zip(got_arrays, want_arrays)):
        err = relative_error(g, w)
        worst = max(worst, err)
        if err > tol:
            shape = (
                ""
                if np.shape(g) == np.shape(w)
                else (f" (shape {np.shape(g)}, expected {np.shape(w)})")
            )
            problems.append(f"{label}: parameter {k} relative error {err:.3g} > {tol:g}{shape}")
    return worst, problems


def cross_check(name, problem, frameworks, quiet=False):
    """Gradients (or, for inference, outputs) of every framework against numpy-hand.

    A tinygrad_init mismatch raises CrossCheckError; a PyTorch one only warns (it means the
    benchmark compares different computations, not that tinygrad_init is wrong).
    """
    hand = HandTrainer(problem)
    if name == "inference":
        want = (None, [hand.output()])
    else:
        want = hand.gradients()
    for fw in frameworks:
        trainer = make_trainer(fw, problem)
        got = (None, [trainer.output()]) if name == "inference" else trainer.gradients()
        worst, problems = compare(f"{name}/{fw.name}", got, want)
        dtypes = sorted({str(np.asarray(a).dtype) for a in got[1]})
        what = "outputs" if name == "inference" else "gradients"
        line = (
            f"cross-check {name:<9} {fw.name:<13} {what} vs numpy-hand: max relative "
            f"error {worst:.2e} (tol {TOLERANCE:g}) dtype {','.join(dtypes)}"
        )
        if problems:
            if fw.name == TG:
                raise CrossCheckError(line + "\n  " + "\n  ".join(problems))
            print(line + "  WARNING: mismatch, timings not comparable", flush=True)
        elif not quiet:
            print(line + "  ok", flush=True)


# ----------------------------------------------------------------------------------------
# Timing


def _stats(samples):
    a = np.asarray(samples)
    p10, p25, p50, p75, p90 = np.percentile(a, [10, 25, 50, 75, 90])
    return dict(
        median=float(p50),
        p10=float(p10),
        p25=float(p25),
        p75=float(p75),
        p90=float(p90),
        iqr_rel=float((p75 - p25) / p50) if p50 else 0.0,
        n=int(a.size),
    )


def time_round_robin(callables, quick):
    """Seconds per call of each callable: warm-up, then interleaved samples.

    Each sample runs a batch of calls sized to take about 20 ms (3 ms with --quick); the
    number of rounds fills a time budget within [min, max] rounds.  The order of the
    callables rotates every round so that none always runs right after another.
    """
    sample_s, budget_s = (0.003, 0.25) if quick else (0.02, 6.0)
    min_rounds, max_rounds = (3, 15) if quick else (12, 150)
    per_call = {}
    for name, fn in callables.items():  # warm-up: at least 2 calls and 50 ms (quick: 1)
        n, start = 0, time.perf_counter()
        while n < (1 if quick else 2) or (not quick and time.perf_counter() - start < 0.05):
            fn()
            n += 1
        t = time.perf_counter()
        fn()
        per_call[name] = max(time.perf_counter() - t, 1e-7)
    reps = {name: max(1, int(round(sample_s / t))) for name, t in per_call.items()}
    round_s = sum(reps[n] * per_call[n] for n in callables)
    rounds = int(min(max_rounds, max(min_rounds, budget_s // max(round_s, 1e-9))))
    names = list(callables)
    samples = {name: [] for name in names}
    gc.collect()
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, k = callables[name], reps[name]
            start = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - start) / k)
    return samples


def bench_workload(name, frameworks, quick):
    problem = make_problem(name, quick)
    callables = {}
    for fw in [HAND, *frameworks]:
        trainer = make_trainer(fw, problem)
        label = fw if isinstance(fw, str) else fw.name
        callables[label] = trainer.infer if name == "inference" else trainer.step
        if label == TG and hasattr(trainer, "compiled"):
            callables[COMPILED] = make_trainer(fw, problem).compiled(name == "inference")
    samples = time_round_robin(callables, quick)
    scale = 1e6 / (2 * problem["n_ops"]) if name == "chain" else 1e3
    unit = "us/op" if name == "chain" else "ms/step"
    result = {"unit": unit, "frameworks": {}}
    for label, s in samples.items():
        stats = _stats([v * scale for v in s])
        result["frameworks"][label] = stats
    return result


# ----------------------------------------------------------------------------------------
# Memory and start-up: one fresh process per framework (--child)


def _rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss(reset_ok):
    if reset_ok:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_framework(name, threads):
    if name == HAND:
        return HAND
    if name == TG:
        return TinygradInit()
    return Torch(threads)


def child_memory(framework, quick, threads):
    """Peak memory of 3 wide training steps (see the module docstring for the method)."""
    fw = child_framework(framework, threads)
    warm = make_trainer(fw, make_problem("tiny", quick))  # libraries' lazy set-up goes first
    warm.step()
    del warm
    gc.collect()
    have_proc = os.path.exists("/proc/self/statm")
    rss0 = _rss_now() if have_proc else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    traced = framework != TORCH
    if traced:
        tracemalloc.start()
    problem = make_problem("wide", quick)
    trainer = make_trainer(fw, problem)
    del problem
    gc.collect()
    model_traced = tracemalloc.get_traced_memory()[0] if traced else None
    reset_ok = have_proc and _reset_peak_rss()
    if traced:
        tracemalloc.reset_peak()
    for _ in range(3):
        trainer.step()
    peak_traced = tracemalloc.get_traced_memory()[1] if traced else None
    peak_rss = _peak_rss(reset_ok)
    return dict(
        traced_peak=peak_traced,
        traced_model=model_traced,
        rss_delta=peak_rss - rss0,
        rss_method="VmHWM" if reset_ok else "ru_maxrss",
    )


def child_startup(framework, quick, threads):
    """Seconds from the script's start to the end of the first mnist training step."""
    fw = child_framework(framework, threads)
    trainer = make_trainer(fw, make_problem("mnist", quick))
    trainer.step()
    return dict(seconds=time.perf_counter() - _T0)


def run_child(section, framework, args):
    """Run this script as ``--child section:framework`` in a fresh process; its JSON result."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        f"{section}:{framework}",
        "--threads",
        str(args.threads),
    ] + (["--quick"] if args.quick else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"child {section}:{framework} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


# ----------------------------------------------------------------------------------------
# gradcheck timing


def gradcheck_timing(quick):
    import tinygrad_init as tg

    gradcheck = getattr(tg, "gradcheck", None)
    if not callable(gradcheck):  # not exported yet, or the name is still the submodule
        try:
            from tinygrad_init.gradcheck import gradcheck
        except ImportError:
            return None
    spec = sizes(quick)["gradcheck"]
    rng = np.random.default_rng(SEED)
    layers = spec["layers"]
    arrays = mlp_params(rng, layers, "tanh", dtype=np.float64)
    x = tg.tensor(rng.standard_normal((spec["batch"], layers[0])))
    inputs = tuple(tg.tensor(a, requires_grad=True) for a in arrays)
    n_layers = len(arrays) // 2

    def mlp(*params):
        h = x
        for k in range(n_layers):
            h = h @ params[2 * k].T + params[2 * k + 1]
            if k < n_layers - 1:
                h = h.tanh()
        return h

    result = dict(parameters=int(sum(a.size for a in arrays)), layers=layers, batch=spec["batch"])
    for mode, fast in (("full", False), ("fast", True)):
        start = time.perf_counter()
        ok = gradcheck(mlp, inputs, fast_mode=fast)
        result[mode] = dict(seconds=time.perf_counter() - start, passed=bool(ok))
    return result


def jacobian_timing(quick, have_torch):
    """Seconds per Jacobian of x -> tanh(W_L ... tanh(W_1 x + b_1) ... + b_L), float32."""
    import tinygrad_init as tg
    from tinygrad_init import func

    spec = sizes(quick)["jacobian"]
    width, depth = spec["width"], spec["depth"]
    rng = np.random.default_rng(SEED)
    bound = 1 / np.sqrt(width)
    ws = [_uniform(rng, (width, width), np.sqrt(3) * bound) for _ in range(depth)]
    bs = [_uniform(rng, (width,), bound) for _ in range(depth)]
    x0 = rng.standard_normal(width).astype(np.float32)
    tws, tbs = [tg.tensor(w) for w in ws], [tg.tensor(b) for b in bs]

    def net(x):
        for w, b in zip(tws, tbs):
            x = (w @ x + b).tanh()
        return x

    x, v = tg.tensor(x0), tg.tensor(rng.standard_normal(width).astype(np.float32))

    def vjp_loop():
        rows = []
        for e in np.eye(width, dtype=np.float32):
            _, fn = func.vjp(net, x)
            rows.append(fn(tg.tensor(e))[0].numpy())
        return np.stack(rows)

    def one_vjp():
        _, fn = func.vjp(net, x)
        return fn(v)

    callables = {
        "tg jacrev": lambda: func.jacrev(net)(x),
        "tg jacfwd": lambda: func.jacfwd(net)(x),
        "tg vjp loop": vjp_loop,
        "tg jvp": lambda: func.jvp(net, (x,), (v,)),
        "tg vjp": one_vjp,
    }
    result = dict(width=width, depth=depth, errors={})
    want = None
    if have_torch:
        import torch

        tw, tb = [torch.from_numpy(w) for w in ws], [torch.from_numpy(b) for b in bs]

        def tnet(x):
            for w, b in zip(tw, tb):
                x = torch.tanh(w @ x + b)
            return x

        tx = torch.from_numpy(x0)
        callables["torch.func.jacrev"] = lambda: torch.func.jacrev(tnet)(tx)
        want = torch.func.jacrev(tnet)(tx).numpy()
    got = {
        "tg jacrev": func.jacrev(net)(x).numpy(),
        "tg jacfwd": func.jacfwd(net)(x).numpy(),
        "tg vjp loop": vjp_loop(),
    }
    ref = want if want is not None else got["tg jacrev"]
    for name, jac in got.items():
        result["errors"][name] = relative_error(jac, ref)
    samples = time_round_robin(callables, quick)
    result["seconds"] = {name: _stats(s)["median"] for name, s in samples.items()}
    return result


# ----------------------------------------------------------------------------------------
# Reporting


def environment(threads):
    info = dict(
        python=platform.python_version(),
        numpy=np.__version__,
        torch=torch_version(),
        threads=threads,
        machine=platform.machine(),
        processor=_cpu_model(),
        cores=os.cpu_count(),
        OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE"),
        OPENBLAS_L2_SIZE=os.environ.get("OPENBLAS_L2_SIZE"),
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            dict(
                api=p.get("internal_api"),
                version=p.get("version"),
                threads=p.get("num_threads"),
                architecture=p.get("architecture"),
            )
            for p in threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(v):
    """Four significant figures or so, with a fixed number of decimals per magnitude."""
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 10:
        return f"{v:.2f}"
    if v >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def _ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def target_marks(name, measures):
    """[('tg/hand <= 1.8', 'PASS'|'FAIL'|'n/a'), ...] for the targets of ``name``, judged on
    ``measures`` (its ratios of medians, and its own median under its unit)."""
    marks = []
    for measure, limit in TARGETS.get(name, ()):
        value = measures.get(measure)
        mark = "n/a" if value is None else "PASS" if value <= limit else "FAIL"
        marks.append((f"{_MEASURE_NAMES[measure]} <= {limit}", mark))
    return marks


def _targets_text(marks):
    return ", ".join(f"{text} {mark}" for text, mark in marks) or "-"


def print_table(results, have_torch):
    """Medians, ratios of medians, spread, targets; tg/hand@p10 is the ratio of the 10th
    percentiles, steadier than the medians when the machine is busy (not used for targets)."""
    header = (
        f"{'workload':<10} {'unit':<8} {TG:>13} {COMPILED:>9} {HAND:>11} {TORCH:>9} "
        f"{'tg/hand':>8} {'comp/hand':>9} {'comp/torch':>10} "
        f"{'tg/torch':>8} {'tg/hand@p10':>11}  {'spread (IQR/median) tg/hand/torch':<34} "
        "targets"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        f = r["frameworks"]
        med = {k: v["median"] for k, v in f.items()}
        spreads = "/".join(
            f"{f[k]['iqr_rel'] * 100:.1f}%" if k in f else "-" for k in (TG, HAND, TORCH)
        )
        ratios = r["ratios"]
        p10 = f[TG]["p10"] / f[HAND]["p10"]
        print(
            f"{name:<10} {r['unit']:<8} {_fmt(med.get(TG)):>13} {_fmt(med.get(COMPILED)):>9} "
            f"{_fmt(med.get(HAND)):>11} {_fmt(med.get(TORCH)) if have_torch else 'n/a':>9} "
            f"{_ratio(ratios.get(HAND)):>8} {_ratio(ratios.get('compiled/hand')):>9} "
            f"{_ratio(ratios.get('compiled/torch')):>10} {_ratio(ratios.get(TORCH)):>8} "
            f"{_ratio(p10):>11}  {spreads:<34} {_targets_text(r['target'])}"
        )


# ----------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/bench.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few iterations and smaller sizes: proves it works (< 30 s)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP threads for every framework (default 1)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only",
        metavar="NAME,...",
        help="comma-separated subset of: " + ", ".join(WORKLOADS + SECTIONS),
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the table, cProfile tinygrad_init's eager and compiled steps of each "
        "selected workload (top 15 functions by tottime)",
    )
    parser.add_argument(
        "--check-only", action="store_true", help="run the gradient cross-check and exit"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # memory:FW or startup:FW
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    names = WORKLOADS + SECTIONS
    if args.only:
        args.selected = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in args.selected if n not in names]
        if unknown:
            parser.error(
                f"--only: unknown name(s) {', '.join(unknown)}; choose from {', '.join(names)}"
            )
    else:
        args.selected = list(names)
    return args


def limit_threads(threads):
    """Pin the libraries already loaded (numpy's BLAS, torch's OpenMP) with threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads)


def profile_workloads(names, quick):
    import cProfile
    import pstats

    fw = TinygradInit()
    for name in names:
        problem = make_problem(name, quick)
        trainer = make_trainer(fw, problem)
        runs = [("eager", trainer.infer if name == "inference" else trainer.step)]
        if hasattr(trainer, "compiled"):  # a fresh model, so the two do not share state
            runs.append((COMPILED, make_trainer(fw, problem).compiled(name == "inference")))
        steps = 3 if name == "chain" else (20 if name in ("wide", "cnn") else 300)
        steps = max(1, steps // 10) if quick else steps
        for label, fn in runs:
            for _ in range(3):  # a compiled step records twice, then replays
                fn()
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(steps):
                fn()
            prof.disable()
            print(
                f"\n== cProfile: tinygrad_init {label} {name}, {steps} steps, top 15 by tottime =="
            )
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)

    if args.child:
        section, framework = args.child.split(":", 1)
        fn = child_memory if section == "memory" else child_startup
        print(json.dumps(fn(framework, args.quick, args.threads)))
        return 0

    start = time.perf_counter()
    frameworks = [TinygradInit()]
    tv = torch_version()
    if tv is not None:
        frameworks.append(Torch(args.threads))
        limit_threads(args.threads)  # again: torch loaded libraries of its own
    env = environment(args.threads)
    quick_note = " (--quick: sizes and iterations reduced)" if args.quick else ""
    print(f"tinygrad_init benchmark{quick_note}")
    print(
        f"python {env['python']}, numpy {env['numpy']}, torch {tv or 'not installed'}; "
        f"{env['processor']} ({env['cores']} cores); threads pinned to {args.threads}"
    )
    if env["load_average"] is not None:
        print(
            "load average (1, 5, 15 min) at start: "
            + ", ".join(f"{v:.2f}" for v in env["load_average"])
            + f" on {env['cores']} cores (figures get noisy as it nears the core count)"
        )
    print(
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}"
        f"; BLAS: {env['blas']}"
    )
    if tv is None:
        print(
            "note: PyTorch is not installed (pip install torch==2.13.0), so its column is "
            "empty and the cnn target cannot be judged"
        )

    workloads = [n for n in args.selected if n in WORKLOADS]
    try:
        for name in workloads:
            cross_check(name, make_problem(name, args.quick), frameworks)
    except CrossCheckError as e:
        print(f"\nFAILED gradient cross-check, nothing timed:\n{e}", file=sys.stderr)
        return 1
    if args.check_only:
        print("gradient cross-check passed")
        return 0

    results = {}
    for name in workloads:
        r = bench_workload(name, frameworks, args.quick)
        med = {k: v["median"] for k, v in r["frameworks"].items()}
        r["ratios"] = {HAND: med[TG] / med[HAND]}
        if TORCH in med:
            r["ratios"][TORCH] = med[TG] / med[TORCH]
        if COMPILED in med:
            r["ratios"]["compiled/hand"] = med[COMPILED] / med[HAND]
            if TORCH in med:
                r["ratios"]["compiled/torch"] = med[COMPILED] / med[TORCH]
        fw_stats = r["frameworks"]
        r["ratio_p10_hand"] = fw_stats[TG]["p10"] / fw_stats[HAND]["p10"]
        r["target"] = target_marks(name, {**r["ratios"], r["unit"]: med[TG]})
        results[name] = r
        print(f"timed {name} ({r['frameworks'][TG]['n']} samples)", flush=True)

    print()
    if results:
        print_table(results, tv is not None)

    report = dict(environment=env, quick=args.quick, workloads=results, sizes=sizes(args.quick))
    fw_names = [TG, HAND] + ([TORCH] if tv is not None and not args.quick else [])
    if tv is not None and args.quick and ("memory" in args.selected or "startup" in args.selected):
        print(
            "\nnote: --quick leaves PyTorch out of the one-process-each sections "
            "(importing it takes seconds)"
        )
    if "memory" in args.selected:
        mem = {fw: run_child("memory", fw, args) for fw in fw_names}
        report["memory"] = mem
        mib = 2.0**20
        ratio = mem[TG]["traced_peak"] / mem[HAND]["traced_peak"]
        print(
            f"\npeak memory, wide ({'x'.join(map(str, sizes(args.quick)['wide']['layers']))}"
            f", batch {sizes(args.quick)['wide']['batch']}), 3 steps, fresh process each:"
        )
        for fw in fw_names:
            m = mem[fw]
            traced = "-" if m["traced_peak"] is None else f"{m['traced_peak'] / mib:.1f} MiB"
            model = (
                ""
                if m["traced_model"] is None
                else (f" (model and data {m['traced_model'] / mib:.1f} MiB)")
            )
            print(
                f"  {fw:<13} traced peak {traced:>10}{model}; rss peak - rss before "
                f"the model {m['rss_delta'] / mib:.1f} MiB ({m['rss_method']})"
            )
        marks = target_marks("memory", {HAND: ratio})
        print(f"  tg/hand traced peak {ratio:.2f}x   target {_targets_text(marks)}")
        report["memory_ratio"] = ratio
    if "startup" in args.selected:
        st = {fw: run_child("startup", fw, args) for fw in fw_names}
        report["startup"] = st
        print("\nimport plus first mnist step, fresh process each:")
        for fw in fw_names:
            print(
                f"  {fw:<13} {st[fw]['seconds']:.3f} s in process "
                f"(process wall {st[fw]['wall']:.3f} s)"
            )
    if "gradcheck" in args.selected:
        gc_result = gradcheck_timing(args.quick)
        report["gradcheck"] = gc_result
        if gc_result is None:
            print("\nnote: tinygrad_init.gradcheck does not exist yet; gradcheck not timed")
        else:
            print(
                f"\ngradcheck, tanh MLP {'-'.join(map(str, gc_result['layers']))}, batch "
                f"{gc_result['batch']}, {gc_result['parameters']:,} parameters (float64):"
            )
            for mode in ("full", "fast"):
                g = gc_result[mode]
                print(
                    f"  {mode:<5} mode {g['seconds']:8.3f} s  "
                    f"{'passed' if g['passed'] else 'FAILED'}"
                )

    if "jacobian" in args.selected:
        jr = jacobian_timing(args.quick, tv is not None)
        report["jacobian"] = jr
        sec = jr["seconds"]
        print(
            f"\nJacobian of a {jr['width']}-wide, {jr['depth']}-layer tanh MLP at one example "
            "(median per call; relative error against torch.func.jacrev):"
        )
        base = sec.get("torch.func.jacrev")
        for name, t in sec.items():
            ratio = f"  {t / base:7.1f}x torch.func.jacrev" if base else ""
            err = jr["errors"].get(name)
            err = f"  error {err:.1e}" if err is not None else ""
            print(f"  {name:<18} {t * 1e3:10.2f} ms{ratio}{err}")
        print(f"  one jvp / one vjp: {sec['tg jvp'] / sec['tg vjp']:.2f}")
    if args.profile:
        profile_workloads(workloads, args.quick)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    load = f"; load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"\ndone in {time.perf_counter() - start:.1f} s{load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
