"""The one progress display, and where long work uses it: gradcheck, stats, the report."""

import io
import sys

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import cli, demo
from tinygrad_init._progress import Progress, terminal_progress
from tinygrad_init.autograd import Function


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Pipe(io.StringIO):
    def isatty(self):
        return False


def test_the_demo_uses_the_one_progress_class():
    assert demo.Progress is Progress


def test_bar_on_a_terminal_plain_lines_elsewhere():
    tty, pipe = Terminal(), Pipe()
    for stream in (tty, pipe):
        p = Progress(stream)
        p(1, 2, "first")
        p(2, 2, "second")
    assert tty.getvalue().startswith("\r[###############---------------] 1/2")
    assert tty.getvalue().endswith("\n") and tty.getvalue().count("\n") == 1
    assert pipe.getvalue().splitlines()[1].startswith("[##############################] 2/2")


def test_terminal_only_is_silent_off_a_terminal():
    pipe = Pipe()
    p = Progress(pipe, terminal_only=True)
    p(1, 2, "x")
    p(2, 2, "x")
    assert pipe.getvalue() == ""


def test_interval_skips_updates_but_draws_the_last():
    tty = Terminal()
    p = Progress(tty, interval=3600)
    for k in range(1, 101):
        p(k, 100, "step")
    assert tty.getvalue().count("\r") == 2  # the first and the final update
    assert " 100/100 " in tty.getvalue()


def _big_check(**kw):
    rng = np.random.default_rng(0)
    w = tg.Tensor(rng.standard_normal((60, 50)), requires_grad=True)  # 3000 elements
    x = tg.Tensor(rng.standard_normal((2, 60)))
    return tg.gradcheck(lambda w: (x @ w).tanh().sum(), (w,), **kw)


def test_full_gradcheck_on_many_elements_shows_progress_on_a_terminal(monkeypatch):
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    assert _big_check() is True
    text = tty.getvalue()  # the first update and the last are always drawn
    assert text.startswith("\r[") and " 0/3002 " in text
    assert "gradcheck: done" in text and text.endswith("\n")
    assert " 3002/3002 " in text  # one backward pass, 3000 elements, the re-entrant pass
    labels = []
    assert _big_check(progress=lambda done, total, label: labels.append(label)) is True
    assert labels.count("gradcheck: perturbing input 0") == 3000
    assert labels.count("gradcheck: backward passes") == 2


def test_full_gradcheck_is_silent_off_a_terminal_and_when_small(monkeypatch):
    pipe = Pipe()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert _big_check() is True
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    x = tg.Tensor(np.linspace(-1, 1, 10), requires_grad=True)
    assert tg.gradcheck(lambda x: (x * x).sum(), (x,)) is True
    assert _big_check(progress=False) is True
    assert pipe.getvalue() == "" and tty.getvalue() == ""


def test_gradcheck_result_is_unchanged_by_progress():
    calls = []
    x = tg.Tensor(np.linspace(-1, 1, 10), requires_grad=True)
    assert tg.gradcheck(lambda x: (x * x).sum(), (x,), progress=lambda *a: calls.append(a))
    assert calls[-1] == (12, 12, "gradcheck: done")
    assert [c[0] for c in calls] == list(range(12)) + [12]

    class Wrong(Function):
        @staticmethod
        def forward(ctx, a):
            return a * a

        @staticmethod
        def backward(ctx, g):
            return g  # should be 2 a g

    for progress in (None, True, False, lambda *a: None):
        assert tg.gradcheck(Wrong.apply, (x,), raise_exception=False, progress=progress) is False
        with pytest.raises(tg.GradcheckError, match="gradcheck failed"):
            tg.gradcheck(Wrong.apply, (x,), progress=progress)


def test_stats_shows_progress_on_a_terminal_only(monkeypatch, capsys):
    argv = ["stats", "--depth", "4", "--width", "8", "--steps", "2"]
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    assert cli.main(argv) == 0
    assert "stats: recording step 1/2" in tty.getvalue()
    assert "stats: done" in tty.getvalue()
    pipe = Pipe()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert cli.main(argv) == 0
    assert pipe.getvalue() == ""
    assert "4-layer MLP" in capsys.readouterr().out  # the tables still go to stdout


def test_report_writing_reports_progress(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_init import report, sections

    done = sections.run_sections(["chaos"], quick=True)
    calls = []
    html = report.render_report(None, "x", done, progress=lambda *a: calls.append(a))
    assert "Edge of chaos" in html
    assert calls[0][:2] == (0, 1) and calls[-1] == (1, 1, "report: done")
    pipe = Pipe()
    report.write_report(None, tmp_path / "r.html", "x", done, Progress(pipe, terminal_only=True))
    assert pipe.getvalue() == "" and (tmp_path / "r.html").exists()
    assert terminal_progress().enabled == sys.stderr.isatty()
