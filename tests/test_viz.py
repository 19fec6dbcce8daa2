"""Op graphs and flow diagrams: classification in the DOT source, clusters, collapsing,
NaN style, gradients untouched, SVG rendering, plots."""

import math
import re

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import init, models, viz
from tinygrad_init.diagnostics import Monitor
from tinygrad_init.viz.colors import NAN_FILL, fill_color, legend_html


def _normal_4_over_fan(t, generator=None):
    return init.normal_(t, 0.0, math.sqrt(4.0 / t.shape[1]), generator=generator)


def _model(depth, act, init_, width=32, seed=0):
    m = models.make_mlp(depth, width, act, init_, generator=seed)
    x, y = models.synthetic_batch(m, generator=seed + 1)
    return m, x, y


def _flow_classes(dot):
    """Layer index -> class, read from the DOT source."""
    return {int(i): c for i, c in re.findall(r"\bL(\d+) \[.*?\bclass=(\w+)", dot.source)}


def _linear_classes(dot):
    """Classes of the 'linear' op nodes in forward order."""
    found = re.findall(r"<B>linear</B><BR/>\(64, \d+\)<BR/>[^>]*?> class=(\w+)", dot.source)
    return found


def _graph(model, x, y, **kw):
    with viz.trace_modules(model) as trace:
        loss = models.mse(model(x), y)
    return viz.draw_graph(loss, modules=trace, **kw), loss


SCENARIOS = [
    ("sigmoid", "normal", "vanishing"),
    ("relu", _normal_4_over_fan, "exploding"),
    ("relu", "kaiming_normal", "healthy"),
]


@pytest.mark.parametrize("act,init_,expected", SCENARIOS)
def test_flow_diagram_classifies_the_three_scenarios(act, init_, expected):
    m, x, y = _model(30, act, init_)
    classes = _flow_classes(viz.gradient_flow(m, x, y))
    assert len(classes) == 30
    if expected == "healthy":
        assert set(classes.values()) == {"healthy"}
    else:
        assert [classes[i] for i in range(5)] == [expected] * 5
        assert classes[29] == "healthy"
        other = {"vanishing", "exploding"} - {expected}
        assert not other & set(classes.values())


@pytest.mark.parametrize("act,init_,expected", SCENARIOS)
def test_op_graph_classifies_the_three_scenarios(act, init_, expected):
    m, x, y = _model(30, act, init_)
    dot, _ = _graph(m, x, y, max_nodes=10_000)
    classes = _linear_classes(dot)
    assert len(classes) == 30
    if expected == "healthy":
        assert set(classes) == {"healthy"}
    else:
        assert classes[:5] == [expected] * 5 and classes[-1] == "healthy"


def test_flow_shows_the_numbers_and_the_verdict():
    m, x, y = _model(30, "sigmoid", "normal")
    src = viz.gradient_flow(m, x, y, title="t").source
    assert "gradients vanish toward the input" in src
    assert "sat " in src and "dW " in src and "grad " in src and "act " in src
    assert fill_color(1e-5) in src  # a deep blue is used
    assert "colour = gradient magnitude" in src  # the legend


def test_flow_from_a_monitor_and_custom_thresholds():
    m, x, y = _model(8, "relu", "kaiming_normal")
    with Monitor(m) as mon:
        models.mse(m(x), y).backward()
        mon.step()
    classes = _flow_classes(viz.gradient_flow(mon))
    assert set(classes.values()) == {"healthy"}
    strict = _flow_classes(viz.gradient_flow(mon, thresholds=(0.999, 1.001)))
    assert strict[7] == "healthy" and set(strict.values()) - {"healthy"}


def test_drawing_changes_no_gradient():
    m, x, y = _model(5, "tanh", "xavier_normal")
    models.mse(m(x), y).backward()
    before = [p.grad.detach().numpy().copy() for p in m.parameters()]
    viz.gradient_flow(m, x, y)
    _graph(m, x, y)
    for p, g in zip(m.parameters(), before):
        np.testing.assert_array_equal(p.grad.detach().numpy(), g)
    assert not any(mod._forward_hooks for mod in m.modules())


def test_recorded_gradients_match_autograd():
    a = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = (a * 3).tanh()
    out = (b * b).sum()
    with tg.autograd.record_gradients() as rec:
        out.backward(retain_graph=True)
    dot = viz.draw_graph(out, params={"a": a}, grads=rec, metric="max_abs")
    expect = np.abs(a.grad.detach().numpy()).max()
    assert f"max|g| {expect:.1e}" in dot.source
    assert "<B>a</B>" in dot.source


def test_clusters_and_parameter_names():
    m, x, y = _model(3, "relu", "kaiming_normal")
    dot, _ = _graph(m, x, y)
    src = dot.source
    assert "subgraph cluster_0 " in src and "subgraph cluster_2 " in src
    assert "<B>0.weight</B>" in src and "<B>4.bias</B>" in src
    assert "<B>1: relu</B>" in src  # one-op modules are inlined, not clustered


def test_collapsing_above_the_node_budget():
    m, x, y = _model(100, "relu", "kaiming_normal")
    dot, _ = _graph(m, x, y, max_nodes=250)
    src = dot.source
    assert src.count("shape=box3d") == 100
    assert "0: Linear</B>" in src and "<B>0.weight</B>" not in src
    full, _ = _graph(m, x, y, max_nodes=100_000)
    assert "shape=box3d" not in full.source


def test_nan_has_its_own_style():
    w = tg.tensor([[1.0, np.nan]], requires_grad=True)
    out = (w * 2).sum()
    src = viz.draw_graph(out, params={"w": w}).source
    assert f'fillcolor="{NAN_FILL}"' in src and "class=nan" in src and "NaN" in src


def test_freed_graph_is_a_clear_error():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    out = (a * a).sum()
    out.backward()
    with pytest.raises(RuntimeError, match="freed by a previous backward pass"):
        viz.draw_graph(out)


def test_argument_errors():
    a = tg.tensor([1.0], requires_grad=True)
    out = (a * 2).sum()
    with pytest.raises(ValueError, match="unknown metric 'l3'"):
        viz.draw_graph(out, metric="l3")
    with pytest.raises(TypeError, match="trace_modules"):
        viz.draw_graph(out, modules=object())
    with pytest.raises(TypeError, match="must be a Tensor"):
        viz.draw_graph(3.0)
    with pytest.raises(ValueError, match="pass the inputs"):
        viz.gradient_flow(models.make_mlp(2))


def test_colour_scale_is_ordered_and_legend_lists_the_classes():
    def blue(c):
        return int(c[5:7], 16) - int(c[1:3], 16)

    vanish = [fill_color(r) for r in (5e-3, 5e-4, 5e-5, 5e-6)]
    assert vanish == sorted(vanish, key=lambda c: -sum(int(c[i : i + 2], 16) for i in (1, 3, 5)))
    assert all(blue(c) > 0 for c in vanish)
    hot = fill_color(1e5)
    assert int(hot[1:3], 16) > int(hot[5:7], 16)
    html = legend_html()
    for word in ("vanishing", "healthy", "exploding", "NaN", "no grad"):
        assert word in html


def test_render_svg_and_dot(tmp_path):
    m, x, y = _model(4, "sigmoid", "normal")
    svg = viz.render(viz.gradient_flow(m, x, y), tmp_path / "flow.svg")
    text = open(svg).read()
    assert "<svg" in text and "vanishing" in text or "healthy" in text
    dot, _ = _graph(m, x, y)
    viz.render(dot, tmp_path / "graph.svg")
    assert "<svg" in (tmp_path / "graph.svg").read_text()
    viz.render(dot, tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")
    with pytest.raises(ValueError, match="output format"):
        viz.render(dot, tmp_path / "graph.jpgx")


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from tinygrad_init.viz import plots

    m, x, y = _model(6, "tanh", "xavier_normal")
    with Monitor(m) as mon:
        for _ in range(3):
            models.mse(m(x), y).backward()
            mon.step()
    ax = plots.plot_gradient_norms(mon)
    assert ax.get_yscale() == "log" and len(ax.collections) >= 1
    ax = plots.plot_activation_histograms(mon)
    assert len(ax.lines) == 6
    ax = plots.plot_gradient_heatmap(mon)
    assert ax.images[0].get_array().shape == (6, 3, 3)  # RGB: the diagrams' colours
    ax.figure.savefig(tmp_path / "h.png")


def _row_lengths(dot):
    """Boxes per row of a chain diagram, read from its ``row<k>`` subgraphs."""
    rows = re.findall(r"subgraph row\d+ \{(.*?)\n\t?\}", dot.source, flags=re.S)
    return [len(re.findall(r"\bL\d+ \[", row)) for row in rows]


@pytest.mark.parametrize("depth", [3, 6, 12, 30])
def test_rows_are_chosen_from_the_layer_count(depth):
    lengths = _row_lengths(viz.gradient_flow(*_model(depth, "tanh", "xavier_normal")))
    n = sum(lengths)
    assert n > 0
    if n <= 8:
        assert lengths == [n]
    else:
        assert len(lengths) > 1 and max(lengths) <= 10
        assert max(lengths) - min(lengths) <= max(lengths) // 2  # no stub of a last row


def test_trace_modules_and_the_monitor_agree_on_every_owner():
    """One ownership walk: viz.trace_modules and the Monitor's hooks give each tensor of a
    residual forward the same innermost module (the + to its block, fc1's matmul to fc1)."""
    from tinygrad_init.diagnostics.hooks import Recorder
    from tinygrad_init.viz.graph import ModuleTrace

    assert viz.ModuleTrace is ModuleTrace
    model = models.make_resnet(depth=3, width=8, generator=0)
    x, _ = models.synthetic_batch(model, batch=4, generator=np.random.default_rng(0))
    recorder = Recorder(model)
    with viz.trace_modules(model) as trace:
        out = model(x)
    recorder.close()
    assert trace.owners == recorder.owners
    assert trace.owner(out) == "4" and trace.outputs["4"] is out and trace.outputs[""] is out
    merge = out._node.inputs[0]  # the head's input: block 3's x + branch(x)
    assert merge._node.op.name == "add" and trace.owner(merge) == "3"
    assert [trace.owner(a) for a in merge._node.inputs] == ["2", "3.branch.3"]
    assert trace.owner(x) is None and trace.owner(model[0].weight) == "0"
