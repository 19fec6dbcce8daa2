"""tools/bench.py --quick runs end to end, and its gradient cross-check passes and bites.

Speed is never asserted here (shared machines are noisy): these tests only prove that the
benchmark works and that tinygrad_init's gradients agree with the hand-written numpy
reference, and that a disagreement stops the benchmark with exit status 1.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tools" / "bench.py"
WORKLOADS = ("tiny", "scalar", "mnist", "deep", "wide", "cnn", "chain", "inference")


def run(args, timeout=120):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def test_quick_benchmark_runs_and_its_gradient_cross_check_passes(tmp_path):
    out = tmp_path / "bench.json"
    proc = run([str(BENCH), "--quick", "--json", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    for name in WORKLOADS:
        assert re.search(
            rf"^cross-check {name} +tinygrad_init .*relative error (\S+) "
            r"\(tol 1e-05\).* ok$",
            text,
            re.M,
        ), f"no passing cross-check for {name}"
        assert re.search(rf"^{name} +(ms/step|us/op) +\d", text, re.M), f"no table row {name}"
    assert "FAILED" not in text

    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert set(report["workloads"]) == set(WORKLOADS)
    for name, r in report["workloads"].items():
        for fw in ("tinygrad_init", "numpy-hand"):
            stats = r["frameworks"][fw]
            assert stats["median"] > 0 and stats["n"] >= 3, (name, fw, stats)
        assert r["ratios"]["numpy-hand"] > 0
    for fw in ("tinygrad_init", "numpy-hand"):
        assert report["memory"][fw]["traced_peak"] > report["memory"][fw]["traced_model"] > 0
        assert report["startup"][fw]["seconds"] > 0
    assert report["memory_ratio"] > 0
    if report["gradcheck"] is not None:
        assert report["gradcheck"]["full"]["passed"] and report["gradcheck"]["fast"]["passed"]


def test_a_gradient_mismatch_stops_the_benchmark_with_exit_status_1():
    # The hand-written reference is made wrong by 0.1 % in one parameter's gradient.
    script = f"""
import sys
sys.path.insert(0, {str(ROOT / "tools")!r})
import bench, bench_reference

gradients = bench_reference.MLP.gradients

def wrong(self, x, labels):
    loss, grads = gradients(self, x, labels)
    grads[2] *= 1.001
    return loss, grads

bench_reference.MLP.gradients = wrong
sys.exit(bench.main(["--quick", "--only", "tiny", "--check-only"]))
"""
    proc = run(["-c", script])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED gradient cross-check, nothing timed" in proc.stderr
    assert re.search(r"tiny/tinygrad_init: parameter 2 relative error \S+ > 1e-05", proc.stderr)
    assert "timed" not in proc.stdout


def test_each_target_is_judged_on_its_own_measure_and_is_n_a_without_it():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench
    finally:
        sys.path.remove(str(ROOT / "tools"))
    tiny = bench.target_marks("tiny", {"numpy-hand": 1.9, "compiled/hand": 1.2})
    assert tiny == [("tg/hand <= 1.8", "FAIL"), ("comp/hand <= 1.2", "PASS")]
    assert bench.target_marks("cnn", {"numpy-hand": 0.7}) == [
        ("tg/torch <= 1.3", "n/a"),
        ("comp/torch <= 0.9", "n/a"),
    ]
    assert bench.target_marks("chain", {"us/op": 5.4}) == [("tg us/op <= 5.0", "FAIL")]
    assert bench.target_marks("no-such-workload", {}) == []
