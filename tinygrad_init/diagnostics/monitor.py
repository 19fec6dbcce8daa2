"""The Monitor: per-node statistics of a model on every recorded forward/backward pass.

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
import html
import io

import numpy as np

from .._io import atomic_write
from .hooks import Recorder
from .records import Record, record_of
from .rules import judge
from .status import EXPLODING, NONFINITE, VANISHING, as_thresholds, format_number
from .structure import Structure
from .theory import predict
from .verdict import Verdict

__all__ = ["Monitor", "Summary"]


class Summary(str):
    """The text table that :meth:`Monitor.summary` returns: a ``str`` (print it, search
    it) that a notebook shows as an HTML table (``_repr_html_``) or as the plain table
    (``_repr_pretty_``), not as a quoted string of ``\\n`` escapes."""

    def __new__(cls, text, html_table=""):
        self = super().__new__(cls, text)
        self._html = html_table
        return self

    def _repr_html_(self):
        return self._html or f"<pre>{html.escape(str(self))}</pre>"

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def _table_html(caption, header, rows):
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


class Monitor:
    """Record per-node statistics of a model on every forward/backward pass.

    ``Monitor(model)`` registers a forward hook on every module (see
    :mod:`~tinygrad_init.diagnostics.hooks`); from the root's forward it builds the
    network's :class:`~tinygrad_init.diagnostics.structure.Structure` (layers, norm
    layers, residual merges, attention weights, in execution order).  Call :meth:`step`
    once per training step, after ``backward()``: it turns what the hooks saw into one
    :class:`~tinygrad_init.diagnostics.records.Record` per node.  :meth:`close` (or
    leaving a ``with`` block) removes every hook.

    ``thresholds``: a :class:`Thresholds` (or ``(vanishing, exploding)``);
    ``sample_size``: activation values per node kept from the last step for histograms
    (0 keeps none); ``every``: record steps 0, every, 2*every, ... only.
    """

    def __init__(self, model, thresholds=None, sample_size=4096, every=1):
        if not (
            callable(getattr(model, "named_modules", None))
            and callable(getattr(model, "register_forward_hook", None))
        ):
            raise TypeError(f"Monitor: model must be an nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Monitor: every must be a positive int, got {every!r}")
        self.model = model
        self.thresholds = as_thresholds(thresholds)
        self.every = every
        self.records = []
        self.samples = {}
        self.structure = None
        self._prev_weights = {}
        self._steps = 0
        self._closed = False
        self._recorder = Recorder(model, sample_size, on_root=self._on_root)

    def _on_root(self, outputs):
        self.structure = Structure.build(self._recorder, outputs)

    @property
    def _tensor_handles(self):
        return self._recorder.tensor_hooks

    @property
    def layers(self):
        """Node names in execution order (known after one forward)."""
        s = self.structure
        if s is None and not self._recorder.probes and self.last_structure is not None:
            s = self.last_structure
        return (s or Structure.chain(self._recorder)).order

    @property
    def steps(self):
        """How many steps :meth:`step` has counted (recorded or skipped by ``every``)."""
        return self._steps

    def step(self):
        """Close the current step: one record per node is appended and returned."""
        if self._steps % self.every:
            self._steps += 1
            self._recorder.enabled = self._steps % self.every == 0
            return []
        structure = self.structure or Structure.chain(self._recorder)
        recs = []
        for index, key in enumerate(structure.order, 1):
            node = structure.nodes[key]
            recs.append(record_of(node, self._steps, index, self._prev_weights.get(key)))
            if node.weight is not None:
                self._prev_weights[key] = np.asarray(node.weight._array, np.float64).copy()
        judge(recs, structure, self.thresholds)
        predict(structure, recs)
        self.samples = {
            key: structure.nodes[key].probes[-1].act.sample
            for key in structure.order
            if structure.nodes[key].probes[-1].act.sample is not None
        }
        self._last_structure = structure
        self.structure = None
        self._recorder.reset()
        self._steps += 1
        self._recorder.enabled = not self._closed and self._steps % self.every == 0
        self.records.extend(recs)
        return recs

    # -- reading ----------------------------------------------------------------------
    def _last_step(self, step=None):
        if not self.records and self._recorder.probes:
            self.step()
        if not self.records:
            raise RuntimeError(
                "Monitor: nothing recorded yet: run a forward and backward "
                "pass through the model, then call mon.step()"
            )
        last = self.records[-1].step
        s = last if step is None else (last + 1 + step if step < 0 else step)
        recs = [r for r in self.records if r.step == s]
        if not recs:
            raise ValueError(f"Monitor: no step {step}; recorded steps are 0..{last}")
        return recs

    @property
    def last_structure(self):
        """The structure of the last recorded step (None before the first)."""
        return getattr(self, "_last_structure", None)

    def to_records(self):
        """Every record so far: a list of dicts, one per node per step."""
        return [r.to_dict() for r in self.records]

    def to_csv(self, path):
        """Write :meth:`to_records` to ``path`` as CSV (atomically)."""
        recs = self.to_records()
        if not recs:
            raise RuntimeError("Monitor.to_csv: nothing recorded yet")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=Record.field_names())
        writer.writeheader()
        for r in recs:
            writer.writerow({k: "" if v is None else v for k, v in r.items()})
        atomic_write(path, buffer.getvalue().encode("utf-8"), "to_csv")
        return path

    def _rows(self, step=None):
        recs = self._last_step(step)
        header = [
            "#",
            "layer",
            "activation",
            "gain",
            "act std (meas/theory)",
            "grad std (meas/theory)",
            "grad ratio",
            "act ratio",
            "|dW|",
            "sat/dead",
            "status",
        ]
        rows = []
        for r in recs:
            satdead = " ".join(
                x
                for x in (
                    "" if r.saturated is None else f"sat {r.saturated:.0%}",
                    "" if r.dead is None else f"dead {r.dead:.0%}",
                )
                if x
            )
            if r.entropy is not None:
                satdead = f"entropy {r.entropy:.0%}"
            rows.append(
                [
                    str(r.index),
                    f"{r.name} {r.layer}",
                    r.activation or "-",
                    format_number(r.gain, ".2f"),
                    f"{format_number(r.act_std)} / {format_number(r.theory_act_std)}",
                    f"{format_number(r.grad_std)} / {format_number(r.theory_grad_std)}",
                    format_number(r.grad_ratio),
                    format_number(r.act_ratio),
                    format_number(r.weight_grad_norm),
                    satdead or "-",
                    r.status.upper() if r.status in (VANISHING, EXPLODING, NONFINITE) else r.status,
                ]
            )
        return recs, header, rows

    def summary(self, step=None):
        """A text table of the nodes at ``step`` (default the last): measured beside theory.

        ``#`` is the execution order that the diagrams and the verdict share; ``grad
        ratio`` is against the end of the stream (or the output), ``act ratio`` against
        the first node; ``gain`` is ``sqrt(fan_in * Var[W])``.
        """
        recs, header, rows = self._rows(step)
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines = [
            f"step {recs[0].step}: {len(recs)} nodes; grad ratio = grad rms / the stream "
            f"end's (or the output's), act ratio = act rms / the first node's (vanishing < "
            f"{self.thresholds.vanishing:g}, exploding > {self.thresholds.exploding:g})",
            "  ".join(h.ljust(w) for h, w in zip(header, widths)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return Summary("\n".join(lines), _table_html(lines[0], header, rows))

    def summary_html(self, step=None):
        """:meth:`summary` as an HTML table (for notebooks)."""
        _, header, rows = self._rows(step)
        return _table_html(None, header, rows)

    def verdict(self, step=None):
        """A :class:`Verdict` for ``step`` (default the last)."""
        recs = self._last_step(step)
        return Verdict.from_records(recs, self.thresholds, self.last_structure)

    # -- lifetime ---------------------------------------------------------------------
    def close(self):
        """Remove every hook this monitor registered (module and tensor hooks)."""
        self._recorder.close()
        self._recorder.enabled = False
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (
            f"<Monitor of {type(self.model).__name__}: {len(self.layers)} nodes, "
            f"{self._steps} steps{', closed' if self._closed else ''}>"
        )

    def _repr_pretty_(self, p, cycle):
        if not self.records or cycle:
            p.text(repr(self))
            return
        p.text(f"{self!r}\n{self.summary()}\n\n{self.verdict()}")

    def _repr_html_(self):
        text = html.escape(repr(self))
        if not self.records:
            return f"<p>{text}</p>"
        return f"<p>{text}</p>{self.summary()._repr_html_()}{self.verdict()._repr_html_()}"
