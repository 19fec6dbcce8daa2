"""The op graph's drawing model: runs of identical residual blocks collapse into one node
("Block x N", the worst op's colour, the range of the ratios) with the edges into and out
of the run kept; a plain chain and ``collapse=False`` draw every op; the DOT is valid."""

import math
import re
import shutil
import subprocess

import pytest

from tinygrad_init import models, nn, viz
from tinygrad_init.diagnostics import Monitor
from tinygrad_init.diagnostics.structure import Structure
from tinygrad_init.graphwalk import walk
from tinygrad_init.viz.colors import NAN_FILL, fill_color, fmt
from tinygrad_init.viz.flowmodel import severity
from tinygrad_init.viz.graphmodel import build_graph


def _traced(model, seed=1):
    x, y = models.synthetic_batch(model, generator=seed)
    with viz.trace_modules(model) as trace:
        out = model(x)
        loss = models.mse(out, y)
    return loss, trace


def _resnet(depth, width=8, **kw):
    return _traced(models.make_resnet(depth=depth, width=width, generator=0, **kw))


def _dot_plain(src):
    """``dot -Tplain`` of ``src``: the layout, or a failure if DOT does not parse."""
    done = subprocess.run(["dot", "-Tplain"], input=src.encode(), capture_output=True)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()
    return done.stdout.decode()


def _in_blocks(trace, t, first, last):
    """Whether tensor ``t`` was made inside blocks ``first`` .. ``last`` of make_resnet."""
    o = trace.owner(t)
    return o is not None and o != "" and first <= int(o.split(".")[0]) <= last


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


def test_forty_blocks_become_one_node_with_the_range_and_the_worst_op():
    loss, trace = _resnet(40)
    full = build_graph(loss, modules=trace, collapse=False, max_nodes=100_000)
    diagram = build_graph(loss, modules=trace)
    (run,) = diagram.runs
    assert run.count == 40 and run.head == "Block x 40"
    # x, y; the stem and the head (weight, bias, linear each); the loss (4 ops); the run
    assert len(diagram.nodes) == 13 and len(full.nodes) == 12 + 40 * (5 + 4)
    # the members' ratios, read from the expanded diagram
    ids = {f"t{id(t)}" for t in trace.claimed if _in_blocks(trace, t, 1, 40) and t._node}
    ratios = [n.ratio for n in full.nodes if n.id in ids]
    assert len(ratios) == 40 * 5  # relu, linear, relu, linear, add per block
    assert run.lines[0] == "blocks 1 .. 40" and run.lines[1] == "each: 5 ops, 4 params"
    assert run.lines[2] == f"grad x{fmt(min(ratios), 0)} .. x{fmt(max(ratios), 0)}"
    assert run.ratio == max(ratios, key=severity) and run.ratio > 100
    src = viz.draw_graph(loss, modules=trace).source
    line = next(x for x in src.splitlines() if x.strip().startswith("r0 ["))
    assert "Block x 40</B>" in line and "shape=box3d" in line and "class=exploding" in line
    assert f'fillcolor="{fill_color(run.ratio)}"' in line
    assert re.search(r"grad x[\d.e+-]+ \.\. x[\d.e+-]+", line)


def test_the_worst_member_sets_the_colour_even_when_it_is_nan():
    model = models.make_resnet(depth=12, width=8, generator=0)
    model[7].branch[3].weight.data[0, 0] = float("nan")  # block 7's last layer
    loss, trace = _traced(model)
    (run,) = build_graph(loss, modules=trace).runs
    assert math.isnan(run.ratio) and run.lines[3].startswith("worst: ")
    line = next(x for x in viz.draw_graph(loss, modules=trace).source.splitlines() if "r0 [" in x)
    assert f'fillcolor="{NAN_FILL}"' in line and "class=nan" in line


def test_the_edges_of_a_run_join_its_neighbours():
    loss, trace = _resnet(40)
    diagram = build_graph(loss, modules=trace)
    stem, head = trace.outputs["0"], trace.outputs["41"]
    into = {e.src for e in diagram.edges if e.dst == "r0"}
    out_of = {e.dst for e in diagram.edges if e.src == "r0"}
    assert into == {f"t{id(stem)}"} and out_of == {f"t{id(head)}"}
    assert not any(e.src == e.dst for e in diagram.edges)
    kept = {(e.src, e.dst) for e in diagram.edges}
    assert len(kept) == len(diagram.edges)  # one edge per pair


def test_a_partial_run_keeps_the_different_blocks_expanded():
    """Blocks 1 and 2 differ from 3 .. 12 (block 2 is wider inside): only 3 .. 12 collapse,
    and the run's input is block 2's output."""
    model = models.make_resnet(depth=12, width=8, generator=0)
    model[2].branch[1] = nn.Linear(8, 16)
    model[2].branch[3] = nn.Linear(16, 8)
    loss, trace = _traced(model)
    diagram = build_graph(loss, modules=trace)
    (run,) = diagram.runs
    assert run.count == 10 and run.lines[0] == "blocks 3 .. 12"
    assert {e.src for e in diagram.edges if e.dst == run.id} == {f"t{id(trace.outputs['2'])}"}
    drawn = {n.id for n in diagram.nodes}
    for t in trace.claimed:
        if t._node is not None:
            assert (f"t{id(t)}" in drawn) == (not _in_blocks(trace, t, 3, 12))


def test_collapse_false_draws_every_op_and_true_forces_it():
    loss, trace = _resnet(40)
    full = viz.draw_graph(loss, modules=trace, collapse=False, max_nodes=100_000).source
    assert "Block x" not in full and "shape=box3d" not in full
    assert len(re.findall(r"^\s*t\d+ \[", full, re.M)) == len(walk([loss])[0])
    small, small_trace = _resnet(3)
    assert "Block x" not in viz.draw_graph(small, modules=small_trace).source  # < 60 nodes
    assert "Block x 3</B>" in viz.draw_graph(small, modules=small_trace, collapse=True).source
    with pytest.raises(ValueError, match="draw_graph: collapse must be None, True or False"):
        viz.draw_graph(small, modules=small_trace, collapse="yes")


def test_a_plain_chain_is_unchanged():
    loss, trace = _traced(models.make_mlp(30, 16, "relu", "kaiming_normal", generator=0))
    default = viz.draw_graph(loss, modules=trace, max_nodes=10_000).source
    assert default == viz.draw_graph(loss, modules=trace, collapse=False, max_nodes=10_000).source
    assert default == viz.draw_graph(loss, modules=trace, collapse=True, max_nodes=10_000).source
    assert "shape=box3d" not in default and default.count("<B>linear</B>") == 30


def test_collapse_needs_a_trace():
    loss, _ = _resnet(12)
    src = viz.draw_graph(loss, collapse=True).source  # no modules: nothing to collapse by
    assert "Block x" not in src and src.count("<B>add</B>") >= 12


def test_a_run_without_gradients_names_no_worst_op():
    loss, trace = _resnet(12)
    (run,) = build_graph(loss, False, modules=trace).runs
    assert run.ratio is None and run.lines == [
        "blocks 1 .. 12",
        "each: 5 ops, 4 params",
        "no gradient",
    ]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs the graphviz dot program")
def test_the_dot_parses_and_forty_blocks_fit_on_a_screen():
    loss, trace = _resnet(40)
    graph = _dot_plain(viz.draw_graph(loss, modules=trace).source).splitlines()[0].split()
    width, height = float(graph[2]), float(graph[3])  # inches; PNG at 96 dpi
    assert height * 96 < 2500 and width * 96 < 2500
    full = _dot_plain(viz.draw_graph(loss, modules=trace, collapse=False).source)
    assert float(full.splitlines()[0].split()[3]) > 4 * height
