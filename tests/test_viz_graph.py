"""The structural model read from an op-graph trace."""

from tinygrad_init import models, viz
from tinygrad_init.diagnostics import Monitor
from tinygrad_init.diagnostics.structure import Structure


def test_the_structure_of_a_trace_is_the_monitors():
    """One detector: the op graph reads the same Structure the Monitor builds."""
    model = models.make_resnet(depth=5, width=8, generator=0, norm="batch")
    x, y = models.synthetic_batch(model, generator=1)
    with Monitor(model) as mon:
        models.mse(model(x), y).backward()
        mon.step()
    with viz.trace_modules(model) as trace:
        out = model(x)
    s, t = mon.last_structure, Structure.from_trace(trace, [out])
    assert t.order == s.order and len(t.blocks) == 5
    assert [u.name for u in t.units] == [u.name for u in s.units]
    assert t.repeats() == s.repeats() == [(0, 1), (1, 5), (6, 1)]
