"""The report's pictures: one colour scale everywhere, and the page in a real browser."""

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tinygrad_init import models, report, sections, study, viz
from tinygrad_init.diagnostics import Monitor

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _hex(rgb):
    return "#" + "".join(f"{round(v * 255):02x}" for v in rgb)


def test_heatmap_cells_have_the_diagrams_colour_for_the_same_ratio():
    from tinygrad_init.viz import plots

    gen = np.random.default_rng(0)
    model = models.make_mlp(8, 16, "tanh", "small_normal", 4, 2, generator=gen)
    x, y = models.synthetic_batch(model, batch=16, generator=gen)
    with Monitor(model) as mon:
        for _ in range(2):
            models.mse(model(x), y).backward()
            mon.step()
    ax = plots.plot_gradient_heatmap(mon)
    image = ax.images[0].get_array()
    steps = sorted({r["step"] for r in mon.to_records()})
    layers = sorted({r["index"] for r in mon.to_records()})
    seen = set()
    for r in mon.to_records():
        cell = _hex(image[layers.index(r["index"]), steps.index(r["step"])])
        assert cell == viz.node_style(r["grad_ratio"], mon.thresholds)["fillcolor"]
        seen.add(viz.classify(r["grad_ratio"]))
    assert {"vanishing", "healthy"} <= seen  # both ends of the scale were read back
    matplotlib.pyplot.close("all")


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    cfg = study.StudyConfig(depth=4, width=8, steps=3, samples=30, deep_depth=6, record_every=2)
    path = tmp_path_factory.mktemp("report") / "report.html"
    chaos = sections.measure_chaos(width=40, depth=12, grid=(6, 5))
    section = sections.Section("chaos", "Edge of chaos", chaos, sections.chaos_findings(chaos))
    report.write_report(study.run_study(cfg), path, sections=[section])
    return path


def _chi(readout):
    return float(re.search(r"chi_1 = ([0-9.e+-]+):", readout).group(1))


def test_one_colour_per_init_in_every_loss_plot():
    colors = report._scheme_colors()
    assert len(set(colors.values())) == len(study.SCHEMES)


# Runs when the page has loaded: opens every run, measures (reading scrollWidth lays the page
# out again) and writes the result into the page, where --dump-dom reads it.
_PROBE = """<script>
var errors = [];
window.addEventListener('error', function (e) { errors.push(String(e.message || e.target.src)); },
                        true);
var error = console.error; console.error = function () { errors.push([].join.call(arguments));
                                                          error.apply(console, arguments); };
function shown(box) {  // what a training-step slider shows: the visible frames, its label
  var frames = [].filter.call(box.querySelectorAll('.frame'), function (f) {
    return getComputedStyle(f).display !== 'none'; });
  return {steps: frames.map(function (f) { return f.dataset.step; }),
          titles: frames.map(function (f) { return f.querySelector('svg').textContent; }),
          label: box.querySelector('.control output').textContent};
}
function move(input, value) { input.value = value; input.dispatchEvent(new Event('input')); }
window.addEventListener('load', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var broken = [].filter.call(document.images, function (i) {
    return !(i.complete && i.naturalWidth > 0); }).length;
  var box = document.querySelector('.steps'), slider = box.querySelector('input');
  var steps = {sliders: document.querySelectorAll('.steps input[type=range]').length,
               frames: box.querySelectorAll('.frame').length, before: shown(box)};
  move(slider, slider.max); steps.after = shown(box);
  var phase = document.querySelector('.phase'), marker = phase.querySelector('.marker');
  function read() { return {readout: phase.querySelector('.readout').textContent,
    left: parseFloat(marker.style.left), top: parseFloat(marker.style.top)}; }
  var w = phase.querySelector('input[name="sigma_w^2"]');
  var b = phase.querySelector('input[name="sigma_b^2"]');
  var chaos = {before: read(), start: [w.value, b.value]};
  move(w, w.max); move(b, b.max); chaos.chaotic = read();
  move(w, 0); chaos.ordered = read();
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({width: document.documentElement.scrollWidth,
    images: document.images.length, broken: broken, errors: errors, steps: steps,
    chaos: chaos});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_report_in_headless_chromium_fits_1400_px_and_loads_every_image(small_report, tmp_path):
    page = tmp_path / "probed.html"
    page.write_text(small_report.read_text().replace("<head>", "<head>" + _PROBE, 1))
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",  # no lock shared with another chromium
            "--window-size=1400,900",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout)
    assert found, (proc.returncode, proc.stderr[-3000:])
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe["width"] <= 1400, probe
    assert probe["images"] > 0 and probe["broken"] == 0, probe
    assert probe["errors"] == []
    # One slider per run; moving it to the end shows that step's diagram, and only that one.
    runs = small_report.read_text().count('<details class="run"')
    steps = probe["steps"]
    assert steps["sliders"] == runs and steps["frames"] == 2, steps  # steps 0 and 2 recorded
    assert steps["before"]["steps"] == ["0"] and steps["before"]["label"] == "step 0"
    assert "at initialization" in steps["before"]["titles"][0]
    assert steps["after"]["steps"] == ["2"] and steps["after"]["label"] == "step 2"
    assert "after 2 SGD steps" in steps["after"]["titles"][0]
    # The sigma sliders start next to the critical point at sigma_b^2 = 0.05 (grid point
    # sigma_w^2 = 1.9, sigma_b^2 = 0.075) and read chi_1 off the grid; the marker follows.
    grid = re.search(r"data-grid='([^']*)'", small_report.read_text()).group(1)
    chaos, chi = probe["chaos"], np.array(json.loads(html.unescape(grid))["chi_1"])
    assert chaos["start"] == ["2", "1"]
    assert _chi(chaos["before"]["readout"]) == pytest.approx(chi[1, 2], rel=5e-3)
    assert chi[4, 5] > 1 > chi[4, 0]
    assert _chi(chaos["chaotic"]["readout"]) == pytest.approx(chi[4, 5], rel=5e-3)
    assert "chaotic, the squared gradient grows" in chaos["chaotic"]["readout"]
    assert _chi(chaos["ordered"]["readout"]) == pytest.approx(chi[4, 0], rel=5e-3)
    assert "ordered, the squared gradient shrinks" in chaos["ordered"]["readout"]
    before, chaotic, ordered = chaos["before"], chaos["chaotic"], chaos["ordered"]
    assert ordered["left"] < before["left"] < chaotic["left"]  # sigma_w^2 to the right
    assert chaotic["top"] < before["top"] and ordered["top"] == chaotic["top"]  # sigma_b^2 up
    assert all(0 < p[k] < 100 for p in (before, chaotic, ordered) for k in ("left", "top"))
    assert "CONSOLE" not in proc.stderr or ":ERROR:CONSOLE" not in proc.stderr


def test_the_slider_takes_at_most_so_many_evenly_spaced_steps_first_and_last_among_them():
    assert report._frame_steps([0, 10, 20]) == [0, 10, 20]
    steps = list(range(0, 200, 10))
    assert report._frame_steps(steps) == [0, 60, 130, 190]
    assert report._frame_steps(steps, most=8) == [0, 30, 50, 80, 110, 140, 160, 190]


def test_without_javascript_each_run_shows_its_diagram_at_initialization(small_report):
    text = small_report.read_text()
    runs = text.count('<details class="run"')
    assert text.count('<div class="frame" data-step="0">') == runs  # shown
    assert text.count('<div class="frame" data-step="2" hidden>') == runs  # behind the slider
    # The phase diagram is a plain image; its marker and sliders exist only with the script.
    assert re.search(r"<div class='phase-plot'><img alt=\"plot\" src=\"data:image/png", text)
    assert "class='marker'" not in text and "type=range" not in text
