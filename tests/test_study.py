"""The study's finding rules, on constructed numbers: each finding holds on healthy numbers
and fails, naming the failed check, on pathological ones."""

import math

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import nn, study

CFG = study.StudyConfig(depth=4, width=8, steps=2, samples=30)

# Numbers under which every classic finding holds (a run not named gets DEFAULT).
DEFAULT = dict(losses=[1.1, 0.5], accuracy=0.9, grad_ratio=0.2)
HEALTHY = {
    ("sigmoid", "small", None, 4): dict(grad_ratio=1e-20, accuracy=1 / 3, losses=[1.1, 1.1]),
    ("tanh", "small", None, 4): dict(grad_ratio=1e-15, accuracy=1 / 3, losses=[1.1, 1.1]),
    ("sigmoid", "large", None, 4): dict(grad_ratio=0.15, saturated=0.38),
    ("tanh", "large", None, 4): dict(grad_ratio=7.7e5, saturated=0.68),
    ("relu", "large", None, 4): dict(grad_ratio=3.4e13, dead=0.3, losses=[1.4e14, math.nan]),
    ("relu", "large", 1.0, 4): dict(grad_ratio=3.4e13, losses=[1.4e14, 8.6e11]),
    ("tanh", "xavier", None, 4): dict(grad_ratio=0.13, losses=[1.06, 0.012], accuracy=1.0),
    ("relu", "he", None, 4): dict(grad_ratio=0.14, losses=[1.32, 0.026], accuracy=1.0),
    ("relu", "he", None, 30): dict(grad_ratio=0.22, losses=[1.39, 0.0006], accuracy=1.0),
    ("relu", "xavier", None, 30): dict(grad_ratio=1.4e-5, losses=[1.1, 1.1], accuracy=0.49),
}


def make_run(spec, **numbers):
    values = {**DEFAULT, **numbers}
    units = 1 if spec.scheme == "zeros" else CFG.width
    return study.RunResult(
        activation=spec.activation,
        scheme=study._SCHEMES[spec.scheme],
        depth=spec.depth,
        clip=spec.clip,
        losses=list(values["losses"]),
        accuracy=values["accuracy"],
        status="healthy",
        grad_ratio=values["grad_ratio"],
        saturated=values.get("saturated"),
        dead=values.get("dead"),
        distinct_units=values.get("units", [units] * (CFG.depth - 1)),
        verdict="",
        monitor=None,
        lr=spec.lr,
    )


def make_study(**changes):
    """A Study of constructed runs; ``changes`` maps 'activation/scheme[/clip]/depth' to
    the numbers that replace the healthy ones."""
    results = []
    for spec in study.plan(CFG):
        key = (spec.activation, spec.scheme, spec.clip, spec.depth)
        numbers = dict(HEALTHY.get(key, {}))
        name = "/".join(str(k) for k in key if k is not None)
        numbers.update(changes.get(name, {}))
        results.append(make_run(spec, **numbers))
    s = study.Study(CFG, results, [], 0.0, classes=3)
    s.findings = study.findings(s)
    return s


def failed(f):
    return [c.statement for c in f.checks if not c.holds]


def test_every_finding_holds_on_healthy_numbers():
    s = make_study()
    assert [f.holds for f in s.findings] == [True] * len(study.FINDINGS) == [True] * 7
    for f in s.findings:
        assert f.evidence == "; ".join(c.statement for c in f.checks)


def test_a_finding_without_checks_does_not_hold():
    assert not study.Finding("claim", "why", []).holds


def test_deep_relu_fails_when_xavier_is_as_accurate_as_he():
    # demo --quick once said "He trains while Xavier stalls" with Xavier 57% and He 52%.
    s = make_study(
        **{
            "relu/he/30": dict(losses=[1.39, 0.957], accuracy=0.52),
            "relu/xavier/30": dict(losses=[1.1, 1.09], accuracy=0.57),
        }
    )
    f = study.finding_deep_relu(s)
    assert not f.holds
    assert failed(f) == [
        "He: accuracy 52% (needs 67%, halfway from chance to 100%)",
        "Xavier: accuracy 57% (needs 20 points below He's)",
    ]


def test_deep_relu_fails_when_xavier_trains_or_he_diverges():
    f = study.finding_deep_relu(make_study(**{"relu/xavier/30": dict(losses=[1.1, 0.6])}))
    assert failed(f) == ["Xavier: loss 1.1 -> 0.6 (needs above 0.9x the start)"]
    f = study.finding_deep_relu(make_study(**{"relu/he/30": dict(losses=[1.39, math.nan])}))
    assert failed(f) == ["He: loss 1.39 -> nan (diverged) (needs below 0.7x the start)"]


def test_matched_init_needs_a_healthy_ratio_a_falling_loss_and_accuracy():
    assert study.finding_he_relu(make_study()).holds
    f = study.finding_he_relu(make_study(**{"relu/he/4": dict(grad_ratio=2e-4)}))
    assert failed(f) == ["relu + he, 4 layers: first/last gradient 2.0e-04 (needs 0.01 to 100)"]
    f = study.finding_xavier_tanh(
        make_study(**{"tanh/xavier/4": dict(losses=[1.06, 0.3], accuracy=0.45)})
    )
    assert failed(f) == ["accuracy 45% (needs 67%, halfway from chance to 100%)"]
    f = study.finding_xavier_tanh(make_study(**{"tanh/xavier/4": dict(losses=[1.06, 0.9])}))
    assert failed(f) == ["loss 1.06 -> 0.9 (needs below 0.7x the start)"]


def test_clipping_must_survive_and_must_not_be_a_cure():
    assert study.finding_clipping(make_study()).holds
    f = study.finding_clipping(make_study(**{"relu/large/1.0/4": dict(losses=[1.4e14, 0.4])}))
    assert failed(f) == [
        "final loss 0.4 (needs above ln 3 = 1.10, a uniform guess's: survived, not fixed)"
    ]
    f = study.finding_clipping(make_study(**{"relu/large/1.0/4": dict(losses=[1.4e14, math.inf])}))
    assert failed(f)[0] == (
        "with clip_grad_norm_(1): loss 1.4e+14 -> inf (diverged) (needs finite and falling)"
    )
    f = study.finding_clipping(make_study(**{"relu/large/4": dict(losses=[1.4e14, 3.0])}))
    assert failed(f) == [
        "ReLU, N(0, 1), without clipping: loss 1.4e+14 -> 3 (needs to diverge or not fall)"
    ]


def test_large_weights_need_an_explosion_or_saturation():
    assert study.finding_large_explode(make_study()).holds
    f = study.finding_large_explode(
        make_study(**{"sigmoid/large/4": dict(grad_ratio=0.15, saturated=0.1)})
    )
    assert failed(f) == [
        "sigmoid: neither first/last gradient 1.5e-01 (needs above 100) nor 10% of units "
        "saturated (needs above 25%)"
    ]
    f = study.finding_large_explode(make_study(**{"relu/large/4": dict(grad_ratio=math.inf)}))
    assert f.holds and "relu: first/last gradient nan (needs above 100)" in f.evidence


def test_small_weights_need_a_vanishing_ratio():
    f = study.finding_small_vanish(make_study(**{"tanh/small/4": dict(grad_ratio=0.5)}))
    assert failed(f) == ["tanh: first/last layer gradient 5.0e-01 (needs below 0.01)"]


def test_zero_weights_need_one_unit_and_random_weights_all_of_them():
    f = study.finding_zero_symmetry(make_study(**{"relu/zeros/4": dict(units=[1, 2, 1])}))
    assert failed(f) == [
        "distinct hidden units per layer after training with zero weights: "
        "sigmoid 1, tanh 1, relu 2"
    ]
    f = study.finding_zero_symmetry(make_study(**{"tanh/xavier/4": dict(units=[8, 7, 8])}))
    assert failed(f) == ["with Xavier weights and zero biases: sigmoid 8, tanh 7, relu 8 of 8"]


@pytest.mark.parametrize(
    "accuracy, classes, expected", [(0.67, 3, True), (0.66, 3, False), (0.55, 10, True)]
)
def test_well_above_chance_is_halfway_to_perfect(accuracy, classes, expected):
    assert study.well_above_chance(accuracy, 1 / classes) is expected


def test_evaluate_gives_loss_and_accuracy_of_the_same_weights():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    x = tg.randn(20, 2)
    y = tg.tensor(np.arange(20) % 3)
    loss, accuracy = study.evaluate(model, x, y)
    logits = model(x).detach().numpy().astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(20), np.arange(20) % 3].mean(), rel=1e-5)
    assert accuracy == np.mean(logits.argmax(1) == np.arange(20) % 3)


def test_a_run_records_the_loss_after_its_last_update():
    x, y, classes = study.load_data(CFG)
    r = study.run_one(x, y, classes, "tanh", "xavier", CFG)
    assert len(r.losses) == CFG.steps + 1 and r.losses[-1] != r.losses[-2]
    assert (r.final_loss, r.accuracy) == (r.losses[-1], r.accuracy)
    # A diverging run stops at its first non-finite loss; its weights are those of that loss.
    deep = study.StudyConfig(depth=20, width=64, steps=6, samples=30)
    diverged = study.run_one(*study.load_data(deep)[:2], 3, "relu", "large", deep)
    assert diverged.diverged and len(diverged.losses) == 2 and math.isnan(diverged.final_loss)


def test_the_deep_runs_use_their_own_learning_rate():
    specs = study.plan(CFG)
    deep = [s for s in specs if s.depth == CFG.deep_depth]
    assert [(s.scheme, s.lr) for s in deep] == [("xavier", 0.001), ("he", 0.001)]
    assert {s.lr for s in specs if s.depth == CFG.depth} == {CFG.lr}
    with pytest.raises(ValueError, match="deep_lr must be positive, got 0"):
        study.StudyConfig(deep_lr=0)


def _quadratic(lr):
    w = tg.tensor([1.0], requires_grad=True)
    return w, tg.optim.SGD([w], lr=lr)


@pytest.mark.parametrize("compile", [True, False])
def test_train_steps_updates_after_each_yield_with_the_lr_set_there(compile):
    # loss w^2, gradient 2w: with lr 0.25 every update halves w
    w, optimizer = _quadratic(lr=0.0)
    seen = []
    for step, loss in study.train_steps(lambda: (w * w).sum(), (), optimizer, 6, compile=compile):
        seen.append((step, loss, float(w.grad.item())))
        optimizer.param_groups[0]["lr"] = 0.25  # the lr of this step's update
    assert seen == [(k, 0.25**k, 2 * 0.5**k) for k in range(6)]
    assert w.item() == 0.5**6  # six updates, the last one after the last yield
    assert list(study.train_steps(lambda: (w * w).sum(), (), optimizer, 0)) == []
    assert w.item() == 0.5**6 and w.grad.item() == 2 * 0.5**5  # no step: nothing ran


@pytest.mark.parametrize("compile", [True, False])
def test_train_steps_stops_at_a_non_finite_loss_without_updating(compile):
    w, optimizer = _quadratic(lr=1e20)  # w: 1 -> -2e20, whose square overflows float32
    with np.errstate(over="ignore"):
        losses = [
            loss
            for _, loss in study.train_steps(
                lambda: (w * w).sum(), (), optimizer, 5, compile=compile
            )
        ]
    assert losses == [1.0, math.inf]
    assert w.item() == np.float32(1 - 2e20)  # the weights that gave the infinite loss


def _everything(r, tmp_path, name):
    path = tmp_path / f"{name}.csv"
    r.monitor.to_csv(path)
    samples = {k: v.tobytes() for k, v in r.initial_samples.items()}
    return (
        [float(v).hex() for v in r.losses],
        r.accuracy,
        r.status,
        r.grad_ratio,
        r.saturated,
        r.dead,
        r.distinct_units,
        r.verdict,
        samples,
        path.read_text(),
    )


@pytest.mark.parametrize(
    "activation, scheme, clip, depth",
    [("tanh", "xavier", None, 4), ("relu", "large", 1.0, 4), ("relu", "large", None, 10)],
)
def test_compiled_and_eager_runs_give_identical_results(
    activation, scheme, clip, depth, tmp_path, monkeypatch
):
    made = []
    compile = tg.replay.compile

    def spy(fn):
        made.append(compile(fn))
        return made[-1]

    monkeypatch.setattr(tg.replay, "compile", spy)
    cfg = dict(depth=4, width=16, steps=16, samples=30, record_every=5)
    results = {}
    for compiled in (True, False):
        config = study.StudyConfig(**cfg, compile=compiled)
        x, y, classes = study.load_data(config)
        r = study.run_one(x, y, classes, activation, scheme, config, clip, depth)
        results[compiled] = _everything(r, tmp_path, str(compiled))
    assert results[True] == results[False]
    assert len(made) == 1 and made[0].replays > 0  # only the compiled run compiles, and replays
    if depth == 10:  # it diverges on a replayed step (the fourth)
        assert len(results[True][0]) == 4 and math.isnan(float.fromhex(results[True][0][-1]))


def test_study_config_compile_must_be_a_bool():
    with pytest.raises(TypeError, match="compile must be True or False, got 'no'"):
        study.StudyConfig(compile="no")
