"""The Monitor's hooks: what one forward and backward pass shows, per module call.

Lifecycle (one step): every module of the model gets a forward hook.  When a module's
forward returns, its hook

1. *claims* the tensors its forward created (walking back from its outputs to its inputs;
   tensors already claimed by an inner module stay theirs), so each tensor has one owner,
   the innermost module that made it (:func:`.ownership.claim`, the walk
   ``viz.trace_modules`` records with too);
2. for a leaf module, measures its output (:class:`ActStats`) and the mean square of its
   input, and registers a tensor hook that measures the gradient reaching the output
   (:class:`GradStats`);
3. among the claimed tensors, finds **merges** (an ``add`` of two non-parameter tensors of
   the output's shape, in a container's forward: the residual ``x + f(x)``) and
   **attention weights** (non-negative rows summing to 1 that feed a ``matmul``, whatever
   implementation made them) and measures them the same way;
4. for the root module, builds the :class:`~tinygrad_init.diagnostics.structure.Structure`
   from the recorded graph, which is still intact.

The hooks only read: results and gradients are unchanged.  ``Recorder.reset()`` starts
the next step; ``Recorder.close()`` removes every hook.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tensor import Tensor
from .activations import lookup
from .ownership import claim, tensors_of
from .status import norm, rms

__all__ = ["ActStats", "GradStats", "Probe", "Recorder", "is_merge"]


@dataclass
class ActStats:
    """Statistics of a forward tensor, in float64."""

    mean: float
    std: float
    rms: float
    finite: bool
    shape: tuple
    saturated: float | None = None  # fraction of outputs near an asymptote
    dead: float | None = None  # fraction of features that are 0 for the whole batch
    all_zero: bool = False
    sample: np.ndarray | None = None


@dataclass
class GradStats:
    """Statistics of the gradient reaching a tensor, in float64."""

    norm: float
    std: float
    rms: float
    finite: bool


@dataclass
class AttentionStats:
    """Rows of attention weights: mean entropy as a fraction of log(keys), mean largest
    weight, and the standard deviation of the logits within a row (when the softmax is an
    ``exp`` of log-probabilities, as ``Tensor.softmax`` computes it)."""

    entropy: float
    max_weight: float
    keys: int
    logit_std: float | None


@dataclass
class Probe:
    """One measured point: a leaf module's output, a merge or attention weights."""

    kind: str  # 'module', 'merge' or 'attention'
    owner: str  # the module whose forward made the tensor
    tensor_id: int
    act: ActStats
    module: object = None
    in_ms: float | None = None
    grad: GradStats | None = None
    branch_zero: bool = False  # merge: one of its inputs is exactly zero
    attention: AttentionStats | None = None


def act_stats(module, y, sample_size=0):
    """:class:`ActStats` of array ``y`` (the output of ``module``, None for a tensor)."""
    y64 = np.asarray(y, dtype=np.float64)
    stats = ActStats(
        mean=float(np.mean(y64)) if y64.size else 0.0,
        std=float(np.std(y64)) if y64.size else 0.0,
        rms=rms(y64),
        finite=bool(np.isfinite(y64).all()),
        shape=tuple(y64.shape),
        all_zero=not bool(np.any(y64)),
    )
    spec = lookup(module) if module is not None else None
    if spec is not None and spec.saturated is not None:
        stats.saturated = float(np.mean(spec.saturated(y64)))
    if spec is not None and spec.rectifier and y64.ndim >= 1 and y64.shape[0] > 0:
        alive = np.any(y64.reshape(y64.shape[0], -1) != 0, axis=0)
        stats.dead = float(1.0 - np.mean(alive)) if alive.size else 0.0
    if sample_size > 0:
        flat = y64.ravel()
        if flat.size > sample_size:
            flat = flat[np.linspace(0, flat.size - 1, sample_size).astype(np.int64)]
        stats.sample = flat.astype(np.float32)
    return stats


def is_merge(t, params):
    """Whether ``t`` is ``a + b`` of two non-parameter tensors of its own shape."""
    node = t._node
    if node is None or node.op.name != "add" or not t.requires_grad or node.inputs is None:
        return False
    args = node.inputs
    return (
        len(args) == 2
        and all(isinstance(a, Tensor) and id(a) not in params for a in args)
        and all(tuple(a.shape) == tuple(t.shape) for a in args)
    )


def attention_stats(p):
    """:class:`AttentionStats` when ``p`` holds rows of probabilities, else None."""
    a = p._array
    if a.ndim < 2 or a.shape[-1] < 2 or not np.issubdtype(a.dtype, np.floating):
        return None
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or not np.allclose(a.sum(-1), 1.0, atol=1e-4):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(a > 0, a * np.log(a), 0.0), axis=-1)
    keys = a.shape[-1]
    logit_std = None
    node = p._node
    if node is not None and node.op.name == "exp" and isinstance(node.inputs[0], Tensor):
        logit_std = float(np.mean(np.std(np.asarray(node.inputs[0]._array, np.float64), -1)))
    return AttentionStats(
        float(np.mean(h) / np.log(keys)), float(np.mean(a.max(-1))), keys, logit_std
    )


class Recorder:
    """Forward hooks on every module of ``model`` (see the module docstring)."""

    def __init__(self, model, sample_size=0, on_root=None):
        self.model = model
        self.sample_size = int(sample_size)
        self.on_root = on_root  # called with the root's output tensors, graph intact
        self.enabled = True
        self.params = {id(p) for p in model.parameters()}
        self.leaves = {n for n, m in model.named_modules() if not list(m.children())}
        self._handles = [
            m.register_forward_hook(self._hook(n, m)) for n, m in model.named_modules()
        ]
        self._grad_handles = []
        self.reset()

    def reset(self):
        """Forget the current step (tensor hooks are removed)."""
        for h in self._grad_handles:
            h.remove()
        self._grad_handles = []
        self.owners = {}  # id(tensor) -> name of the module that made it
        self.keep = []  # the claimed tensors, so that their ids stay valid
        self.probes = {}  # id(tensor) -> Probe
        self.calls = []  # leaf module names in call order

    def close(self):
        for h in self._handles + self._grad_handles:
            h.remove()
        self._handles, self._grad_handles = [], []

    @property
    def tensor_hooks(self):
        return self._grad_handles

    # -- the hook -------------------------------------------------------------------
    def _hook(self, name, module):
        def hook(mod, args, output):
            if not self.enabled:
                return None
            inputs = tensors_of(args)
            outs = tensors_of(output)
            claimed = claim(self.owners, self.keep, outs, name, {id(a) for a in inputs})
            if name in self.leaves and outs and all(outs[0] is not a for a in inputs):
                x = np.asarray(inputs[0]._array, np.float64) if inputs else None
                in_ms = float(np.mean(x * x)) if x is not None and x.size else None
                self._probe("module", name, outs[0], module=module, in_ms=in_ms)
                self.calls.append(name)
            for t in claimed:
                if name not in self.leaves and is_merge(t, self.params):
                    probe = self._probe("merge", name, t)
                    probe.branch_zero = any(not np.any(a._array) for a in t._node.inputs)
                if t._node is not None and t._node.op.name == "matmul":
                    for a in t._node.inputs:
                        if isinstance(a, Tensor) and id(a) not in self.probes:
                            att = attention_stats(a)
                            if att is not None:
                                self._probe("attention", self.owners.get(id(a), name), a)
                                self.probes[id(a)].attention = att
            if name == "" and self.on_root is not None:
                self.on_root(outs)
            return None

        hook.compile_guard = lambda: not self.enabled  # tg.compile replays the idle steps
        return hook

    def _probe(self, kind, owner, t, module=None, in_ms=None):
        probe = Probe(
            kind, owner, id(t), act_stats(module, t._array, self.sample_size), module, in_ms
        )
        self.probes[id(t)] = probe
        if t.requires_grad:
            self._grad_handles.append(t.register_hook(self._grad_hook(probe)))
        return probe

    @staticmethod
    def _grad_hook(probe):
        def hook(grad):
            g = np.asarray(grad._array if isinstance(grad, Tensor) else grad, dtype=np.float64)
            probe.grad = GradStats(
                norm(g), float(np.std(g)) if g.size else 0.0, rms(g), bool(np.isfinite(g).all())
            )
            return None

        return hook
