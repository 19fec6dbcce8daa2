"""Gradient-flow diagnostics that read a network as the graph it runs.

One job per module:

- :mod:`.status`: statuses, :class:`Thresholds`, ratios, float64 statistics, formatting;
- :mod:`.activations`: the activation registry (looked up with ``isinstance``) and the
  normalization layers;
- :mod:`.ownership`: which module produced each tensor (``viz.trace_modules``);
- :mod:`.hooks`: the Monitor's hooks (what one forward/backward shows);
- :mod:`.structure`: the module-level DAG (ownership, edges, merges, norm layers, the
  spine, blocks, repeats), in execution order;
- :mod:`.records`: the typed :class:`Record` of one node at one step;
- :mod:`.theory`: mean-field predictions along the DAG;
- :mod:`.rules`: the ratio rules and the verdict rules;
- :mod:`.verdict`: :class:`Verdict`;  :mod:`.monitor`: :class:`Monitor`.
"""

from .activations import REGISTRY, is_norm, lookup, recommended_init
from .monitor import Monitor
from .records import Record
from .status import (
    EXPLODING,
    HEALTHY,
    MISSING,
    NONFINITE,
    VANISHING,
    ZERO_INIT,
    Thresholds,
    as_thresholds,
    classify,
    format_number,
)
from .structure import Structure
from .verdict import Verdict

_as_thresholds = as_thresholds

__all__ = [
    "Thresholds",
    "classify",
    "Monitor",
    "Verdict",
    "Record",
    "Structure",
    "VANISHING",
    "HEALTHY",
    "EXPLODING",
    "NONFINITE",
    "MISSING",
    "ZERO_INIT",
    "REGISTRY",
    "lookup",
    "is_norm",
    "recommended_init",
    "format_number",
]
