"""The op graph's drawing model: runs of identical residual blocks collapse into one node
("Block x N", the worst op's colour, the range of the ratios) with the edges into and out
of the run kept; a plain chain and ``collapse=False`` draw every op; the DOT is valid."""

import math
import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest
from nets import ResMLP

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import models, nn, viz
from tinygrad_init.diagnostics import Monitor, Thresholds
from tinygrad_init.diagnostics.structure import Structure
from tinygrad_init.graphwalk import walk
from tinygrad_init.viz.colors import NAN_FILL, fill_color, fmt, zero_init_style
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


# ----------------------------------------------------------------------------------------
# The op graph's colours agree with the layer-level diagram and the verdict


def _both(model, loss_fn=F.cross_entropy, d=16):
    """The Monitor's records by name, and the expanded op graph of the same batch with
    the op graph's node for each record (the tensor the record measured)."""
    g = np.random.default_rng(1)
    x = tg.tensor(g.standard_normal((32, d)).astype(np.float32))
    y = tg.tensor(g.integers(0, 10, 32)) if loss_fn is F.cross_entropy else None
    if y is None:
        y = tg.tensor(g.standard_normal((32, 1)).astype(np.float32))
    with Monitor(model) as mon:
        loss_fn(model(x), y).backward()
        mon.step()
    with viz.trace_modules(model) as trace:
        loss = loss_fn(model(x), y)
    names = {id(p): name for name, p in model.named_parameters()}
    diagram = build_graph(loss, names=names, modules=trace, collapse=False, max_nodes=100_000)
    by_id = {n.id: n for n in diagram.nodes}
    structure = Structure.from_trace(trace, [trace.outputs[""]])
    drawn = {
        k: by_id.get(f"t{n.probes[-1].tensor_id}") for k, n in structure.nodes.items() if n.probes
    }
    return mon, {r.name: r for r in mon.records}, drawn, diagram, (loss, trace, names)


def _classes(src):
    return {m for m in re.findall(r"class=\"?([\w-]+)", src)}


def test_he_residual_with_a_final_norm_is_exploding_in_the_op_graph_as_in_the_verdict():
    """Ratios are taken along the stream: the final LayerNorm, which divides the gradient
    by the stream's std (about 1e6 here), cannot turn the explosion into "vanishing"."""
    mon, recs, drawn, diagram, (loss, trace, _) = _both(ResMLP(depth=40, width=16))
    assert mon.verdict().status == "exploding" and diagram.stream
    for key, r in recs.items():
        if drawn.get(key) is not None:  # the op graph's ratio is the layer diagram's
            assert drawn[key].ratio == pytest.approx(r.grad_ratio, rel=1e-6), key
    assert recs["blocks.0.+"].grad_ratio > 1e6 and recs["blocks.39.+"].grad_ratio == 1
    body = [n for n in diagram.nodes if n.kind == "op" and n.head.startswith("blocks.")]
    assert body and all(Thresholds().classify(n.ratio) != "vanishing" for n in body)
    biases = [n for n in diagram.nodes if n.head == "blocks.0.fc1.bias"]
    assert biases[0].ratio > 1e6  # a bias's gradient grows toward the input with the stream
    (norm,) = [n for n in diagram.nodes if n.head == "norm: LayerNorm"]
    assert norm.kind == "module" and norm.ratio == pytest.approx(recs["norm"].grad_ratio)
    src = viz.draw_graph(loss, modules=trace).source
    line = next(x for x in src.splitlines() if x.strip().startswith("r0 ["))
    assert "Block x 40</B>" in line and "class=exploding" in line
    assert "worst: relu in blocks.0" in line
    assert "vanishing" not in _classes(src) and "end of the residual stream" in src
    flow = viz.gradient_flow(mon).source
    box = next(x for x in flow.splitlines() if "Block x 40" in x)
    assert "class=exploding" in box


def test_zero_gradients_behind_zero_initialised_branches_are_zero_init_not_vanishing():
    mon, recs, drawn, diagram, (loss, trace, names) = _both(ResMLP(depth=40, width=16, zero=True))
    v = mon.verdict()
    assert v.status == "healthy" and len(v.zero_init) == 40
    traced = Structure.from_trace(trace, [trace.outputs[""]])  # one detector, both readers
    below = mon.last_structure.zero_below()
    assert traced.zero_below() == below == {f"blocks.{i}.fc1": f"blocks.{i}.fc2" for i in range(40)}
    for key, r in recs.items():
        node = drawn.get(key)
        if node is not None:
            assert node.zero == (r.status == "zero-init"), key
    zero = {n.id for n in diagram.nodes if n.zero}
    where = Counter(
        re.sub(r"blocks\.\d+\.", "", names.get(id(t)) or trace.owner(t))
        for t in walk([loss])[0]
        if f"t{id(t)}" in zero
    )
    assert where == {"fc1.weight": 40, "fc1.bias": 40, "fc1": 40, "act": 40}  # fc1's linear
    full = viz.draw_graph(loss, modules=trace, collapse=False, max_nodes=100_000).source
    style = zero_init_style()
    line = next(x for x in full.splitlines() if "blocks.3.act: relu</B>" in x)
    assert 'class="zero-init"' in line and f'fillcolor="{style["fillcolor"]}"' in line
    assert f'style="{style["style"]}"' in line and f'color="{style["color"]}"' in line
    assert "vanishing" not in _classes(full) and "zero-init</FONT>" in full  # the legend
    src = viz.draw_graph(loss, modules=trace).source
    line = next(x for x in src.splitlines() if x.strip().startswith("r0 ["))
    assert "class=healthy" in line and "80 ops zero-init (gradient after step 1)" in line
    assert "grad x1e+00 .. x1e+00" in line and "zero-init</FONT>" in src


def test_branches_scaled_by_one_over_sqrt_depth_are_healthy_in_the_op_graph():
    mon, recs, drawn, diagram, (loss, trace, _) = _both(
        ResMLP(depth=40, width=16, scale=1 / math.sqrt(40))
    )
    assert mon.verdict().status == "healthy"
    assert _classes(viz.draw_graph(loss, modules=trace, collapse=False).source) <= {
        "healthy",
        "loss",
        "none",
    }
    (run,) = build_graph(loss, modules=trace).runs
    assert Thresholds().classify(run.ratio) == "healthy"


@pytest.mark.parametrize("act, init_name", [("sigmoid", "normal"), ("relu", "kaiming_normal")])
def test_a_plain_chain_is_measured_against_the_output(act, init_name):
    """No stream: every op against the model's output, as the layer diagram's chain."""
    model = models.make_mlp(30, 16, act, init_name, generator=0)
    mon, recs, drawn, diagram, (loss, trace, _) = _both(model, models.mse, d=model[0].in_features)
    assert not diagram.stream and not any(n.zero or n.kind == "module" for n in diagram.nodes)
    for key, r in recs.items():
        assert drawn[key].ratio == pytest.approx(r.grad_ratio, rel=1e-6), key
    src = viz.draw_graph(loss, modules=trace).source
    assert "the output&#x27;s gradient RMS (parameters: the last parameter&#x27;s)" in src
    assert "zero-init" not in src


def test_fixups_zero_classifier_makes_everything_upstream_zero_init_not_vanishing():
    """Fixup zeroes the classifier: no gradient reaches the stream at step 0, by design."""
    model = models.make_resnet(depth=12, width=8, generator=0, branch_scale="fixup")
    mon, recs, drawn, diagram, (loss, trace, _) = _both(model, models.mse, d=32)
    assert mon.verdict().status == "healthy"
    for key, r in recs.items():
        if drawn.get(key) is not None:
            assert drawn[key].zero == (r.status == "zero-init"), key
    assert sum(n.zero for n in diagram.nodes) > 12 * 5
    src = viz.draw_graph(loss, modules=trace, collapse=False).source
    assert "vanishing" not in _classes(src) and "zero-init" in _classes(src)


def test_a_stream_that_overflows_float32_is_drawn_as_getting_exactly_zero_gradient():
    # 100 He blocks: the final LayerNorm squares a stream of std ~1e21, overflows and
    # passes exactly zero gradient back: both diagrams say so rather than "no gradient",
    # and the layer diagram's box names a block whose forward explodes as its worst.
    model = ResMLP(depth=100, width=16)
    g = np.random.default_rng(1)
    x = tg.tensor(g.standard_normal((32, 16)).astype(np.float32))
    y = tg.tensor(g.integers(0, 10, 32))
    with np.errstate(over="ignore", invalid="ignore"):
        flow = viz.gradient_flow(model, x, y, F.cross_entropy).source
        with viz.trace_modules(model) as trace:
            loss = F.cross_entropy(model(x), y)
        ops = viz.draw_graph(loss, modules=trace).source
    assert "Block x 100" in flow and "gradient exactly 0" in flow and "no gradient</B>" not in flow
    worst = re.search(r"worst: (\S+) \((\w+)\)", flow)
    assert worst.group(2) == "exploding" and worst.group(1).endswith(".+")
    assert "Block x 100" in ops and "gradient exactly 0" in ops
