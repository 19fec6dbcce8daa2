"""How a Monitor, a Verdict and a summary display in a notebook (``_repr_html_`` and
``_repr_pretty_``), checked on the objects and by executing a small notebook."""

import pytest

from tinygrad_init import models
from tinygrad_init.diagnostics import Monitor, Verdict
from tinygrad_init.diagnostics.monitor import Summary


def _monitor(depth=30, act="sigmoid", init_="normal"):
    m = models.make_mlp(depth, 32, act, init_, generator=0)
    x, y = models.synthetic_batch(m, generator=1)
    with Monitor(m) as mon:
        models.mse(m(x), y).backward()
        mon.step()
    return mon


def _pretty(obj):
    pretty = pytest.importorskip("IPython.lib.pretty")
    return pretty.pretty(obj)


@pytest.fixture(scope="module")
def mon():
    return _monitor()


def test_summary_is_a_str_with_an_html_table(mon):
    s = mon.summary()
    assert isinstance(s, Summary) and isinstance(s, str)
    assert str(s).splitlines()[0].startswith("step 0: 30 nodes")
    h = s._repr_html_()
    assert h.startswith("<table>") and h.count("<tr>") == 1 + 30
    # layer names escaped: "Linear(32->32)" has a '>', the caption a '<'
    assert "Linear(32-&gt;32)" in h and "Linear(32->32)" not in h
    assert "Sigmoid" in h and "VANISHING" in h
    assert "vanishing &lt; 0.01" in h


def test_verdict_html_shows_the_status_and_is_escaped():
    v = Verdict(
        "vanishing",
        ["0"],
        [],
        [],
        1e-9,
        0.5,
        ["a <script>alert(1)</script> & more"],
        ["use <b>He</b>"],
        headline="gradients vanish in <layer 0>",
    )
    h = v._repr_html_()
    assert 'data-status="vanishing"' in h and "VANISHING: Gradients vanish in &lt;layer 0&gt;" in h
    assert "<script>" not in h and "&lt;script&gt;" in h and "&amp; more" in h
    assert "use &lt;b&gt;He&lt;/b&gt;" in h and "<b>He</b>" not in h
    assert h.count("<li>") == len(str(v).splitlines()) - 1


def test_monitor_html_holds_its_repr_table_and_verdict(mon):
    h = mon._repr_html_()
    assert "&lt;Monitor of Sequential: 30 nodes, 1 steps, closed&gt;" in h
    assert "<Monitor" not in h
    assert mon.summary()._repr_html_() in h and mon.verdict()._repr_html_() in h
    assert 'data-status="vanishing"' in h


def test_monitor_without_records_displays_its_repr_only():
    m = models.make_mlp(2, 8, "relu", "kaiming_normal", generator=0)
    mon = Monitor(m)
    try:
        assert (
            mon._repr_html_()
            == f"<p>&lt;Monitor of Sequential: {len(mon.layers)} nodes, 0 steps&gt;</p>"
        )
        assert _pretty(mon) == repr(mon)
    finally:
        mon.close()


def test_pretty_reprs_are_plain_text(mon):
    v, s = mon.verdict(), mon.summary()
    for obj, text in ((v, str(v)), (s, str(s))):
        out = _pretty(obj)
        assert out == text and "\\n" not in out and not out.startswith(("'", '"'))
        assert len(out.splitlines()) > 1
    out = _pretty(mon)
    assert "\\n" not in out and out.splitlines()[0] == repr(mon)
    assert str(s) in out and str(v) in out


def test_a_notebook_displays_monitor_verdict_and_summary(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [
        "from tinygrad_init import models\n"
        "from tinygrad_init.diagnostics import Monitor\n"
        "m = models.make_mlp(30, 32, 'sigmoid', 'normal', generator=0)\n"
        "x, y = models.synthetic_batch(m, generator=1)",
        "with Monitor(m) as mon:\n    models.mse(m(x), y).backward()\n    mon.step()",
        "display(mon)\ndisplay(mon.verdict())\nmon.summary()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outs = nb.cells[2].outputs
    assert [o.output_type for o in outs] == ["display_data", "display_data", "execute_result"]
    html = [o.data["text/html"] for o in outs]
    plain = [o.data["text/plain"] for o in outs]
    assert "&lt;Monitor of Sequential: 30 nodes, 1 steps, closed&gt;" in html[0]
    assert "<table>" in html[0] and 'data-status="vanishing"' in html[0]
    assert html[1].startswith('<div data-status="vanishing">') and "VANISHING: " in html[1]
    assert html[2].startswith("<table>") and "Linear(32-&gt;32)" in html[2]
    assert "Sigmoid" in html[2]
    assert all("\\n" not in t and not t.startswith("'") for t in plain)
    assert plain[2].splitlines()[0].startswith("step 0: 30 nodes")
