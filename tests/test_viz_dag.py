"""The layer-level diagram of a residual net draws its DAG: the stream as a spine, skip
edges into every merge, and runs of identical blocks collapsed above the box budget."""

import re

import pytest

from tinygrad_init import models, nn, viz
from tinygrad_init.diagnostics import Monitor
from tinygrad_init.viz.flowmodel import build_flow


def _resnet(depth, **kw):
    m = models.make_resnet(depth=depth, width=16, generator=0, **kw)
    x, y = models.synthetic_batch(m, generator=1)
    return m, x, y


def _monitor(m, x, y):
    with Monitor(m) as mon:
        models.mse(m(x), y).backward()
        mon.step()
    return mon


def _boxes(src):
    return set(re.findall(r"^\s*([LB]\d+) \[", src, re.M))


def test_every_merge_has_a_skip_edge_from_its_block_input():
    m, x, y = _resnet(6, norm="batch")
    mon = _monitor(m, x, y)
    s = mon.last_structure
    diagram = build_flow(s, mon._last_step())
    ids = {r.name: f"L{i}" for i, r in enumerate(mon._last_step())}
    skips = {(e.src, e.dst) for e in diagram.edges if e.kind == "skip"}
    merges = s.merges
    assert len(merges) == 6
    for prev, merge in zip(s.spine, s.spine[1:]):
        if merge in merges:
            assert (ids[prev], ids[merge]) in skips
    assert len(skips) == 6
    src = viz.gradient_flow(mon).source
    assert src.count("class=skip") == 6
    for prev, merge in zip(s.spine, s.spine[1:]):
        if merge in merges:
            assert re.search(rf"\b{ids[prev]} -> {ids[merge]} \[class=skip", src)
    assert src.count("subgraph cluster_") == 6  # each branch beside the stream
    assert "peripheries=2" in src  # normalization layers are marked
    assert "shape=circle" in src  # the merges


def test_a_chain_is_not_drawn_as_a_dag():
    m = models.make_mlp(5, 16, "relu", "kaiming_normal", generator=0)
    x, y = models.synthetic_batch(m, generator=1)
    src = viz.gradient_flow(m, x, y).source
    assert "class=skip" not in src and "cluster_" not in src
    assert "each box is a layer" in src


def test_forty_blocks_collapse_to_one_box_unless_told_not_to():
    m, x, y = _resnet(40)
    mon = _monitor(m, x, y)
    src = viz.gradient_flow(mon).source
    assert len(_boxes(src)) <= 5
    assert "Block x 40" in src and "shape=box3d" in src
    box = next(line for line in src.splitlines() if "shape=box3d" in line)
    assert "blocks 1 .. 40</FONT>" in box  # the block range; the count is said once
    assert box.count("40") == 2 and "40 blocks" not in box
    assert re.search(r"grad x[\d.e+-]+ \.\. x[\d.e+-]+", src)  # the range of ratios
    full = viz.gradient_flow(mon, collapse=False).source
    assert len(_boxes(full)) == len(mon._last_step()) and "Block x" not in full
    assert full.count("class=skip") == 40


def test_collapse_is_forced_or_rejected():
    m, x, y = _resnet(3)
    mon = _monitor(m, x, y)
    assert "Block x" not in viz.gradient_flow(mon).source  # small: drawn in full
    forced = viz.gradient_flow(mon, collapse=True).source
    assert "Block x 3" in forced
    with pytest.raises(ValueError, match="collapse must be"):
        viz.gradient_flow(mon, collapse="yes")


def test_the_collapsed_box_takes_the_worst_members_colour():
    m, x, y = _resnet(40)
    mon = _monitor(m, x, y)
    diagram = build_flow(mon.last_structure, mon._last_step(), collapse=True)
    box = next(n for n in diagram.nodes if n.kind == "collapsed")
    assert box.count == 40 and box.record.status == "exploding"
    assert box.record in box.records


def _blas_threads(threadpoolctl):
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


def test_the_diagrams_own_pass_runs_with_one_blas_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas_threads(threadpoolctl):
        pytest.skip("no BLAS library that threadpoolctl can see")
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(_blas_threads(threadpoolctl))
            return x

    m = nn.Sequential(nn.Linear(8, 8), Probe(), nn.ReLU(), nn.Linear(8, 2))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads(threadpoolctl)
        viz.gradient_flow(m, models.synthetic_batch(m, generator=0)[0])
        assert _blas_threads(threadpoolctl) == before  # the caller's setting comes back
    assert seen == [{1}]
