"""``tinygrad-init demo``: run the initialization study and write its HTML report.

    tinygrad-init demo                       # about two minutes on 2 cores
    tinygrad-init demo --quick --out /tmp/report.html
    tinygrad-init demo --depth 12 --width 32 --steps 300 --seed 1 --data digits
    tinygrad-init demo --quick --eager       # every step eagerly, the same numbers

Prints a progress bar while it trains, then the results table and the findings, and the
path of the report.  The report is written atomically, so an interrupted run (Ctrl-C)
leaves no half-written file.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys

from . import report, sections, study
from ._progress import Progress, terminal_progress
from .cli import UsageError, require_renderers
from .sections import SECTIONS
from .study import StudyConfig


def _positive_int(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def configure(parser):
    parser.add_argument(
        "--quick",
        action="store_true",
        help="150 steps on 150 samples instead of 200 on 300 (the same "
        "findings, in about half the time)",
    )
    parser.add_argument(
        "--depth",
        type=_positive_int,
        default=None,
        help="Linear layers of the network (default 20; at least 2)",
    )
    parser.add_argument(
        "--width", type=_positive_int, default=None, help="hidden units per layer (default 64)"
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="SGD steps per run (default 200, 150 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--data",
        choices=("spirals", "digits"),
        default="spirals",
        help="three interleaved spirals (default) or scikit-learn's 8x8 "
        "digits (needs the 'data' extra)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(("classic",) + SECTIONS),
        help="comma-separated parts of the study to run (default all): classic (the "
        "init x activation matrix), " + ", ".join(SECTIONS),
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="run every training step eagerly instead of replaying it with tg.compile "
        "(the same numbers bit for bit; for timing the two)",
    )
    parser.add_argument(
        "--out",
        default="init-report.html",
        help="where to write the HTML report (default init-report.html)",
    )


def _config(args):
    values = {
        k: getattr(args, k) for k in ("depth", "width", "steps") if getattr(args, k) is not None
    }
    values.update(seed=args.seed, data=args.data, compile=not args.eager)
    try:
        return StudyConfig.quick(**values) if args.quick else StudyConfig(**values)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_output(path):
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise UsageError(
            f"cannot write the report to {path!r}: folder {directory!r} does not exist"
        )
    if not os.access(directory, os.W_OK):
        raise UsageError(
            f"cannot write the report to {path!r}: folder {directory!r} is not writable"
        )
    if os.path.isdir(path):
        raise UsageError(f"cannot write the report to {path!r}: it is a folder")


def _command(args, config):
    """The command line that reproduces this run."""
    quick = " --quick" if args.quick else ""
    quick += " --eager" if args.eager else ""
    return (
        f"tinygrad-init demo{quick} --depth {config.depth} --width {config.width} "
        f"--steps {config.steps} --seed {config.seed} --data {config.data} "
        f"--sections {args.sections}"
    )


def _sections(text):
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    known = ("classic",) + SECTIONS
    unknown = [s for s in chosen if s not in known]
    if unknown or not chosen:
        raise UsageError(
            f"--sections: unknown section(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return chosen


def _keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse: ``mallopt(M_MMAP_THRESHOLD, 32
    MiB)`` (its largest) and ``mallopt(M_TRIM_THRESHOLD, 256 MiB)``.  By default the
    numpy temporaries of a few hundred KB, freed and allocated again thousands of times
    (the transformer section), keep going back to the kernel and being faulted in anew:
    measured 3.4 s of kernel time in the 10 s of that section of ``--quick``, none with
    these settings.  Nothing changes where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD


def _measure_sections(keys, quick, seed, compile):
    """The sections measured, and their part of the report drawn, in a second process
    (see :func:`_sections_alongside`): ``(sections, html)``."""
    from .report_sections import sections_html

    _keep_freed_memory()
    measured = sections.run_sections(keys, quick, seed, compile=compile)
    return measured, sections_html(measured)


def _sections_alongside(keys, quick, seed, compile):
    """Start measuring the sections in a second (spawned) process, so that they run while
    this one trains the classic study; returns ``(pool, pending)``, ``pending.get()``
    giving :func:`_measure_sections`'s pair, or None where this process may use only one
    CPU.  Every section seeds its own generators, so the numbers are those of a run in
    this process; only their ``seconds`` differ."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return None
    pool = multiprocessing.get_context("spawn").Pool(1)
    return pool, pool.apply_async(_measure_sections, (keys, quick, seed, compile))


def run(args):
    chosen = _sections(args.sections)
    config = _config(args)
    _check_output(args.out)
    if config.data == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(
                "--data digits needs scikit-learn: pip install 'tinygrad_init[data]'"
            ) from None
    require_renderers(dot=True, matplotlib=True)  # before training, not after it
    _keep_freed_memory()
    result = None
    findings = []
    extra = [s for s in chosen if s != "classic"]
    alongside = None
    if extra and "classic" in chosen:
        alongside = _sections_alongside(extra, args.quick, args.seed, config.compile)
    try:
        if "classic" in chosen:
            print(
                f"Training {len(study.plan(config))} networks ({config.depth} layers of "
                f"{config.width}, {config.steps} steps each) on {config.data}"
                + (f", measuring {', '.join(extra)} alongside" if alongside else "")
                + "...",
                file=sys.stderr,
            )
            result = study.run_study(config, Progress())
            print(report.results_table(result))
            print()
            findings += result.findings
        measured, rendered = [], None
        if alongside:
            print(f"Waiting for {', '.join(extra)}...", file=sys.stderr)
            measured, rendered = alongside[1].get()
        elif extra:
            print(f"Measuring {', '.join(extra)}...", file=sys.stderr)
            measured = sections.run_sections(
                extra, args.quick, args.seed, Progress(), compile=config.compile
            )
    finally:
        if alongside:
            alongside[0].terminate()
            alongside[0].join()
    for s in measured:
        findings += s.findings
    for finding in findings:
        mark = "yes" if finding.holds else "NO "
        print(f"[{mark}] {finding.title}\n      {finding.evidence}")
    path = report.write_report(
        result,
        args.out,
        command=_command(args, config),
        sections=measured,
        sections_rendered=rendered,
        progress=terminal_progress(),
    )
    print(f"\nReport: {os.path.abspath(path)}")
    return 0
