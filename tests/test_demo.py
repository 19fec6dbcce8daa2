"""The initialization study, its report and the `tinygrad-init demo` command."""

import os
import subprocess
import sys

import pytest

from tinygrad_init import cli, report, study

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def quick_study():
    return study.run_study(study.StudyConfig.quick())


def test_every_classic_finding_is_reproduced(quick_study):
    failed = [f"{f.title}: {f.evidence}" for f in quick_study.findings if not f.holds]
    assert not failed
    assert len(quick_study.findings) == 7


def test_zero_init_symmetry_is_shown_numerically(quick_study):
    width = quick_study.config.width
    for activation in study.ACTIVATIONS:
        zeros = quick_study.get(activation, "zeros")
        assert zeros.distinct_units == [1] * (quick_study.config.depth - 1)
        # zero biases with random weights: every unit stays distinct
        assert quick_study.get(activation, "he").distinct_units == [width] * (
            quick_study.config.depth - 1
        )


def test_the_study_covers_every_combination(quick_study):
    labels = {(r.activation, r.scheme.key, r.clip, r.depth) for r in quick_study.results}
    cfg = quick_study.config
    for activation in study.ACTIVATIONS:
        for scheme in study.SCHEMES:
            assert (activation, scheme.key, None, cfg.depth) in labels
        assert (activation, "large", cfg.clip, cfg.depth) in labels
    assert ("relu", "he", None, cfg.deep_depth) in labels
    assert len(quick_study.results) == len(study.plan(cfg)) == 29


def test_same_seed_same_numbers():
    cfg = study.StudyConfig(depth=4, width=16, steps=5, samples=60)
    x, y, classes = study.load_data(cfg)
    runs = [study.run_one(x, y, classes, "tanh", "lsuv", cfg) for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    other = study.StudyConfig(depth=4, width=16, steps=5, samples=60, seed=1)
    x1, y1, _ = study.load_data(other)
    assert study.run_one(x1, y1, classes, "tanh", "lsuv", other).losses != runs[0].losses


def test_report_is_one_self_contained_file(quick_study, tmp_path):
    path = report.write_report(quick_study, tmp_path / "report.html")
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    for finding in quick_study.findings:
        assert finding.title.replace("'", "&#x27;") in text
    assert text.count("<details") == len(quick_study.results)
    shown = [sorted({r.step for r in res.monitor.records}) for res in quick_study.results]
    frames = sum(len(report._frame_steps(steps)) for steps in shown)
    assert frames > len(quick_study.results)  # several steps behind each slider
    assert text.count("<svg") == frames + 1  # a diagram per run and step + legend
    assert "data:image/png;base64," in text
    assert "http://" not in text.replace("http://www.w3.org", "")
    assert 'src="http' not in text and "<link" not in text
    assert text.count("<script") == 1 and "<script src" not in text  # the controls, inline
    assert os.listdir(tmp_path) == ["report.html"]


def test_results_table_has_a_row_per_run(quick_study):
    lines = report.results_table(quick_study).splitlines()
    assert len(lines) == 2 + len(quick_study.results)
    assert lines[0].split()[:2] == ["activation", "init"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--depth", "0"], "--depth: expected a positive integer, got 0"),
        (["--depth", "1"], "depth must be at least 2"),
        (["--width", "many"], "expected a positive integer, got 'many'"),
        (["--data", "mnist"], "invalid choice: 'mnist'"),
        (
            ["--out", "/nonexistent-folder/report.html"],
            "folder '/nonexistent-folder' does not exist",
        ),
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(argv, message, capsys):
    assert cli.main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_output_that_is_a_folder_is_refused(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


def test_interrupted_run_leaves_no_report(tmp_path, monkeypatch, capsys):
    calls = []

    def interrupt(config, progress):
        progress(0, 29, "first run")
        calls.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run_study", interrupt)
    out = tmp_path / "report.html"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 130
    assert "interrupted: nothing written" in capsys.readouterr().err
    assert calls and not out.exists() and os.listdir(tmp_path) == []


def test_demo_end_to_end_through_the_console_script(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "tinygrad-init")
    out = tmp_path / "r.html"
    proc = subprocess.run(
        [exe, "demo", "--quick", "--depth", "4", "--width", "8", "--steps", "3"]
        + ["--sections", "classic", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "29/29" in proc.stderr  # the progress bar finished
    assert "Report: " + str(out) in proc.stdout
    rows = [
        line for line in proc.stdout.splitlines() if line.startswith(("sigmoid", "tanh", "relu"))
    ]
    assert len(rows) == 29
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("[yes]", "[NO ]"))]
    assert len(verdicts) == 7
    assert out.exists() and out.stat().st_size > 10_000


def test_eager_option_runs_every_step_eagerly_and_says_so_in_the_command():
    import argparse

    from tinygrad_init import demo

    parser = argparse.ArgumentParser()
    demo.configure(parser)
    for argv, compiled in (([], True), (["--eager"], False)):
        args = parser.parse_args(["--quick", *argv])
        config = demo._config(args)
        assert config.compile is compiled and config.steps == 150
        assert ("--eager" in demo._command(args, config)) is not compiled


def test_demo_asks_glibc_to_keep_freed_memory_and_nothing_elsewhere(monkeypatch):
    from tinygrad_init import demo

    calls = []

    class Glibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(demo.ctypes, "CDLL", lambda name: Glibc())
    monkeypatch.setattr(demo.sys, "platform", "linux")
    demo._keep_freed_memory()
    assert calls == [(-3, 32 << 20), (-1, 256 << 20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    calls.clear()
    monkeypatch.setattr(demo.ctypes, "CDLL", lambda name: object())  # a libc without mallopt
    demo._keep_freed_memory()
    monkeypatch.setattr(demo.sys, "platform", "darwin")
    monkeypatch.setattr(demo.ctypes, "CDLL", lambda name: Glibc())
    demo._keep_freed_memory()
    assert calls == []


def test_sections_measured_in_a_second_process_are_the_same_numbers(monkeypatch):
    import pickle

    from tinygrad_init import demo, sections
    from tinygrad_init.report_sections import sections_html

    pool, pending = demo._sections_alongside(["chaos", "isometry"], True, 3, True)
    try:
        there, html = pending.get(timeout=120)
    finally:
        pool.terminate()
        pool.join()
    here = sections.run_sections(["chaos", "isometry"], quick=True, seed=3)
    assert [s.key for s in there] == ["chaos", "isometry"]
    assert html == sections_html(there)
    for a, b in zip(there, here):
        assert pickle.dumps(a.measurements) == pickle.dumps(b.measurements)
        assert [(f.title, f.holds, f.evidence) for f in a.findings] == [
            (f.title, f.holds, f.evidence) for f in b.findings
        ]
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert demo._sections_alongside(["chaos"], True, 0, True) is None  # one CPU: in turn


def test_report_takes_the_sections_html_drawn_elsewhere():
    from tinygrad_init import sections

    done = sections.run_sections(["chaos"], quick=True)
    page = report.render_report(None, "x", done, sections_rendered="<p>drawn elsewhere</p>")
    assert "<p>drawn elsewhere</p>" in page and "Edge of chaos" not in page
    assert "Edge of chaos" in report.render_report(None, "x", done)
