"""tg.compile: bit-identical to eager, re-recording on every key change, clear errors."""

import traceback
import warnings

import numpy as np
import pytest

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import nn, optim
from tinygrad_init.diagnostics import Monitor

STEPS = 100


def _batches(shape, classes, n=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    xs = [tg.tensor(rng.standard_normal(shape).astype(np.float32)) for _ in range(n)]
    ys = [tg.tensor(rng.integers(0, classes, shape[0])) for _ in range(n)]
    return xs, ys


def _mlp():
    tg.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 4)
    )


def _train(build, compiled, step_extra=None, batches=None, steps=STEPS):
    """Losses, parameters, grads and optimizer state after ``steps`` steps."""
    model, opt = build()
    xs, ys = batches or _batches((5, 6), 4)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if step_extra is not None:
            step_extra(model)
        opt.step()
        return loss

    fn = tg.compile(step) if compiled else step
    losses = [fn(x, y).detach()._array.copy() for x, y in zip(xs[:steps], ys[:steps])]
    state = [
        {k: np.array(v._array if isinstance(v, tg.Tensor) else v) for k, v in s.items()}
        for s in opt.state.values()
    ]
    return dict(
        losses=losses,
        params=[p._array.copy() for p in model.parameters()],
        grads=[p.grad._array.copy() for p in model.parameters()],
        state=state,
        fn=fn,
        model=model,
        opt=opt,
    )


def _assert_identical(a, b):
    for key in ("losses", "params", "grads"):
        assert len(a[key]) == len(b[key])
        for u, v in zip(a[key], b[key]):
            assert u.dtype == v.dtype and np.array_equal(u, v), key
    assert len(a["state"]) == len(b["state"])
    for s, t in zip(a["state"], b["state"]):
        assert s.keys() == t.keys()
        for k in s:
            assert np.array_equal(s[k], t[k]), k


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "sgd-momentum-wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam-amsgrad": lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True, weight_decay=1e-3),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=1e-2, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_is_bit_identical_over_100_steps(name):
    def build():
        model = _mlp()
        return model, OPTIMIZERS[name](model.parameters())

    eager, compiled = _train(build, False), _train(build, True)
    _assert_identical(eager, compiled)
    assert compiled["fn"].records == 2 and compiled["fn"].replays == STEPS - 2


def test_grads_parameters_and_state_are_the_objects_eager_mode_uses():
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = list(model.parameters())
    xs, ys = _batches((5, 6), 4, n=4)

    @tg.compile
    def step(x, y):
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for x, y in zip(xs, ys):
        step(x, y)
    assert step.replays == 2
    assert list(model.parameters()) == params
    assert all(opt.state[p]["momentum_buffer"] is not None for p in params)
    grads = [p.grad for p in params]
    step(xs[0], ys[0])
    assert all(p.grad is g for p, g in zip(params, grads))  # zeroed and refilled in place


def test_scheduler_and_lr_changes_are_seen_by_the_replay():
    def build():
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1)
        sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        build.sched = sched
        return model, opt

    eager = _train(build, False, step_extra=lambda m: build.sched.step())
    compiled = _train(build, True, step_extra=lambda m: build.sched.step())
    _assert_identical(eager, compiled)


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_gradient_clipping_is_replayed(clip):
    def extra(model):
        if clip == "norm":
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        else:
            nn.utils.clip_grad_value_(model.parameters(), 0.01)

    def build():
        model = _mlp()
        return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    _assert_identical(_train(build, False, extra), _train(build, True, extra))


def test_dropout_with_a_generator_and_batchnorm_running_statistics():
    def build():
        tg.manual_seed(0)
        gen = np.random.default_rng(7)
        model = nn.Sequential(
            nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3, generator=gen),
            nn.Linear(16, 4),
        )  # fmt: skip
        return model, optim.Adam(model.parameters(), lr=1e-2)

    eager, compiled = _train(build, False), _train(build, True)
    _assert_identical(eager, compiled)
    bn_e, bn_c = eager["model"][1], compiled["model"][1]
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert np.array_equal(getattr(bn_e, name)._array, getattr(bn_c, name)._array)
    assert int(bn_c.num_batches_tracked._array) == STEPS


def test_conv_pool_and_cross_entropy():
    def build():
        tg.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, stride=1), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3),
        )  # fmt: skip
        return model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    batches = _batches((3, 2, 8, 8), 3)
    _assert_identical(_train(build, False, batches=batches), _train(build, True, batches=batches))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_of_a_learnt_broadcast_target(reduction):
    """Both of mse_loss's rules, and the un-broadcast of its target's gradient."""

    def run(compiled):
        model = _mlp()
        target = nn.Parameter(tg.zeros(1, 4))
        opt = optim.SGD(list(model.parameters()) + [target], lr=0.05)
        xs, _ = _batches((5, 6), 4, n=20)

        def step(x):
            opt.zero_grad()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # target (1, 4) broadcast against (5, 4)
                loss = F.mse_loss(model(x), target * 1.5, reduction=reduction)
            loss.sum().backward()
            opt.step()
            return loss

        fn = tg.compile(step) if compiled else step
        losses = [fn(x).detach()._array.copy() for x in xs]
        return dict(losses=losses, params=[p._array.copy() for p in opt.param_groups[0]["params"]])

    _assert_runs_identical(run(False), run(True))


class _Mixed(nn.Module):
    """Gradients that need the replay's cast (a float64 parameter on float32 data), its
    un-broadcast (a (1, 4) scale, a scalar shift), its sum into a gradient already
    arriving (x used twice) and a variadic rule (cat)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tg.ones(1, 4, dtype=np.float64))
        self.shift = nn.Parameter(tg.zeros(()))
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        h = tg.cat([x * self.scale, x.tanh(), x + self.shift], 1)
        return self.fc(h.float()) * x


def test_casts_unbroadcasts_sums_and_variadic_rules_are_replayed():
    def build():
        tg.manual_seed(0)
        model = _Mixed()
        return model, optim.SGD(model.parameters(), lr=0.05)

    batches = _batches((5, 4), 4)
    eager, compiled = _train(build, False, batches=batches), _train(build, True, batches=batches)
    _assert_identical(eager, compiled)
    assert compiled["model"].scale.grad.dtype == np.float64
    assert compiled["fn"].replays == STEPS - 2


def test_eval_mode_forward_without_grad():
    model = _mlp().eval()
    fn = tg.compile(lambda x: model(x).softmax(1))
    xs, _ = _batches((5, 6), 4, n=5)
    with tg.no_grad():
        for x in xs:
            assert np.array_equal(fn(x)._array, model(x).softmax(1)._array)
    assert fn.replays == 3


# -- re-recording on key changes ------------------------------------------------------------


def _train_step(model, opt):
    """One SGD step on cross-entropy, uncompiled."""

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _counting_step(model, opt):
    return tg.compile(_train_step(model, opt), debug=True)


def _warm(step, x, y):
    for _ in range(3):
        step(x, y)


def test_each_key_change_records_again_and_debug_says_which():
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = _counting_step(model, opt)
    xs, ys = _batches((5, 6), 4, n=1)
    x, y = xs[0], ys[0]
    _warm(step, x, y)
    assert (step.records, step.replays) == (2, 1)

    def new_shape():
        step(tg.randn(7, 6, generator=np.random.default_rng(0)), y[:1].expand(7))

    def eval_mode():
        model.eval()
        step(x, y)

    def frozen_weight():
        model.train()
        model[0].weight.requires_grad_(False)
        step(x, y)

    changes = [
        (new_shape, "argument entry"),
        (lambda: step(x.double(), y), "argument entry"),
        (eval_mode, "training changed"),
        (frozen_weight, "requires_grad"),
    ]
    for change, message in changes:
        before = step.records
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            change()
        assert step.records == before + 1
        assert any(message in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_grad_mode_and_replaced_parameters_record_again():
    model = _mlp()
    fn = tg.compile(lambda x: model(x).sum(), debug=True)
    xs, _ = _batches((5, 6), 4, n=1)
    for _ in range(3):
        fn(xs[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tg.no_grad():
            fn(xs[0])
    assert fn.records == 3 and "grad mode changed" in str(caught[0].message)
    fn(xs[0])
    model[0].weight = nn.Parameter(tg.zeros(12, 6))
    records = fn.records
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(xs[0])
    assert fn.records == records + 1
    assert "parameters, buffers, children or hooks" in str(caught[0].message)
    assert np.array_equal(out._array, model(xs[0]).sum()._array)


def test_the_cache_is_bounded():
    model = _mlp()
    fn = tg.compile(lambda x: model(x).sum(), cache_size=1)
    a, b = tg.zeros(2, 6), tg.zeros(3, 6)
    for _ in range(3):
        fn(a)
        fn(b)
    assert fn.records == 6 and fn.replays == 0 and len(fn.cache) == 1


def test_a_dropped_recording_takes_its_source_lines_with_it():
    """The generated replay's lines live in linecache only while the recording is kept."""
    import gc
    import linecache

    model = _mlp()
    fn = tg.compile(lambda x: model(x).sum(), cache_size=1)
    a, b = tg.zeros(2, 6), tg.zeros(3, 6)
    before = {k for k in linecache.cache if k.startswith("<tg.compile replay")}
    for x in (a, a, a):
        fn(x)
    ((tape, _),) = fn.cache.values()
    name = tape.run.__code__.co_filename
    assert "".join(linecache.getlines(name)) == tape.source and "def replay(inputs):" in tape.source
    del tape
    for x in (b, b):  # records under another key: the first recording is dropped
        fn(x)
    gc.collect()
    assert name not in linecache.cache
    now = {k for k in linecache.cache if k.startswith("<tg.compile replay")}
    assert len(now - before) == 1  # the recording of b that the cache holds


def test_monitored_steps_run_eagerly_and_the_others_replay():
    def run(compiled):
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1)
        xs, ys = _batches((5, 6), 4, n=12)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        fn = tg.compile(step) if compiled else step
        with Monitor(model, every=4) as monitor:
            for x, y in zip(xs, ys):
                fn(x, y)
                monitor.step()
                opt.step()
        return monitor, model, fn

    (me, model_e, _), (mc, model_c, fn) = run(False), run(True)
    assert fn.replays > 0
    assert [r.step for r in me.records] == [r.step for r in mc.records]
    for r, s in zip(me.to_records(), mc.to_records()):
        assert r.keys() == s.keys()
        assert all(
            np.array_equal(r[k], s[k]) for k in r if isinstance(r[k], (float, int, np.ndarray))
        )
    for p, q in zip(model_e.parameters(), model_c.parameters()):
        assert np.array_equal(p._array, q._array)


# -- what cannot be replayed ----------------------------------------------------------------


def _refused(fn, *args):
    with pytest.raises(RuntimeError) as info:
        for _ in range(3):
            fn(*args)
    return str(info.value)


def test_item_and_data_dependent_control_flow_raise():
    x = tg.randn(4, generator=np.random.default_rng(0))
    assert "Tensor.item()" in _refused(tg.compile(lambda t: t.sum().item()), x)
    assert "bool(tensor)" in _refused(tg.compile(lambda t: t * 2 if t.sum() > 0 else t), x)
    assert "Tensor.numpy()" in _refused(tg.compile(lambda t: tg.tensor(t.numpy() * 2)), x)


def test_random_ops_need_an_explicit_generator():
    x = tg.ones(4, 4)
    message = _refused(tg.compile(lambda t: F.dropout(t, 0.5)), x)
    assert "dropout without an explicit generator=" in message
    assert "tg.randn() (a random draw)" in _refused(tg.compile(lambda t: t + tg.randn(4, 4)), x)


def test_in_place_writes_and_hooks_raise():
    x = tg.ones(3)
    assert "in-place write" in _refused(tg.compile(lambda t: (t * 2).zero_()), x)
    for write in (lambda t: t.add_(1), lambda t: t.mul_(2), lambda t: t.copy_(t * 3)):
        assert "in-place write" in _refused(tg.compile(write), x.clone())

    def augmented(t):
        t += 1
        return t

    assert "Tensor.add_() (an in-place write)" in _refused(tg.compile(augmented), x.clone())
    assert "tg.randperm() (a random draw)" in _refused(tg.compile(lambda t: tg.randperm(3)), x)
    w = tg.ones(3, requires_grad=True)

    def hooked(t):
        y = w * t
        y.register_hook(lambda g: g * 2)
        y.sum().backward()

    assert "tensor hook" in _refused(tg.compile(hooked), x)
    model = nn.Linear(3, 3)
    model.register_forward_hook(lambda m, a, o: None)
    assert "module hook" in _refused(tg.compile(lambda t: model(t)), x)


def test_hooks_registered_after_the_recording_are_never_skipped_by_a_replay():
    """A module hook, a tensor hook on a parameter or on an input, registered once the step
    replays: the next call records again, and the recording refuses the hook (a replay
    would not run it).  Once the hook is removed the step replays again."""
    model = nn.Linear(3, 2)
    x = tg.ones(4, 3, requires_grad=True)

    def step(t):
        model.zero_grad()
        model(t).sum().backward()

    fn = tg.compile(step)
    for _ in range(3):
        fn(x)
    assert fn.replays == 1
    for register, construct in [
        (lambda: model.register_forward_hook(lambda m, a, o: None), "module hook"),
        (lambda: model.register_forward_pre_hook(lambda m, a: None), "module hook"),
        (lambda: model.register_full_backward_hook(lambda m, gi, go: None), "module hook"),
        (lambda: model.weight.register_hook(lambda g: g * 2), "tensor hook"),
        (lambda: x.register_hook(lambda g: g * 2), "tensor hook"),
    ]:
        handle = register()
        with pytest.raises(RuntimeError, match=construct):
            fn(x)
        handle.remove()
        replays = fn.replays
        for _ in range(3):
            fn(x)
        assert fn.replays > replays


def test_a_numpy_constant_computed_from_data_raises_on_the_second_call():
    fn = tg.compile(lambda t: tg.where(t > 0, t, t * 0.1).sum())  # a comparison: numpy
    fn(tg.tensor([1.0, -1.0]))
    with pytest.raises(RuntimeError, match="computed outside the recorded operations"):
        fn(tg.tensor([-1.0, 1.0]))


def test_assigning_grad_inside_raises_and_zero_grad_does_not():
    model = _mlp()
    x = tg.ones(2, 6)

    def by_hand(t):
        for p in model.parameters():
            p.grad = None
        model(t).sum().backward()

    assert "assigning .grad (p.grad = None" in _refused(tg.compile(by_hand), x)

    def recorded(t):
        model.zero_grad()
        model(t).sum().backward()

    fn = tg.compile(recorded)
    for _ in range(3):
        fn(x)
    assert fn.replays == 1


def test_create_graph_and_grad_raise():
    w = tg.ones(3, requires_grad=True)
    x = tg.ones(3)
    assert "create_graph=True" in _refused(
        tg.compile(lambda t: (w * t).sum().backward(create_graph=True)), x
    )
    assert "tg.grad()" in _refused(tg.compile(lambda t: tg.grad((w * t).sum(), w)), x)


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a callable"):
        tg.compile(3)
    with pytest.raises(ValueError, match="cache_size must be a positive int"):
        tg.compile(lambda: None, cache_size=0)
    with pytest.raises(TypeError, match="pass arrays to a compiled function as Tensors"):
        tg.compile(lambda a: a)(np.ones(2))


class _Scale(nn.Module):
    """A module whose forward reads a plain Python attribute."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x.tanh() * self.scale


def test_the_fields_left_out_of_the_attribute_guard_are_those_every_module_has():
    from tinygrad_init.replay import _MODULE_FIELDS

    assert _MODULE_FIELDS == set(nn.Module().__dict__)


def _edited_run(compiled, edit, at=5, steps=9):
    """Losses and parameters of a run whose ``edit(model, opt, knobs)`` happens between
    the calls before step ``at``: ``knobs`` holds a variable the step closes over."""
    tg.manual_seed(0)
    gen = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Linear(4, 8), _Scale(2.0), nn.Dropout(0.3, generator=gen), nn.Linear(8, 2)
    )
    opt = optim.SGD(model.parameters(), lr=0.1)
    xs, ys = _batches((5, 4), 2, n=steps)
    shift = 0.0

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x) + shift, y) * 1.0
        loss.backward()
        opt.step()
        return loss

    def set_shift(value):
        nonlocal shift
        shift = value

    fn = tg.compile(step, debug=True) if compiled else step
    losses, caught = [], []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i == at:
            edit(model, opt, set_shift)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            losses.append(fn(x, y).detach()._array.copy())
        caught += [str(m.message) for m in w]
    return dict(losses=losses, params=[p._array.copy() for p in model.parameters()]), fn, caught


def _assert_runs_identical(a, b):
    for key in ("losses", "params"):
        for u, v in zip(a[key], b[key], strict=True):
            assert u.dtype == v.dtype and np.array_equal(u, v), key


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m, o, s: setattr(m[2], "p", 0.6), "an attribute of a Dropout changed (p)"),
        (lambda m, o, s: setattr(m[1], "scale", 0.5), "an attribute of a _Scale changed (scale)"),
        (lambda m, o, s: setattr(m[1], "offset", 1.0), "_Scale changed (offset)"),
        (lambda m, o, s: s(0.25), "a variable the function closes over changed"),
    ],
    ids=["dropout-p", "module-attribute", "new-attribute", "closure-variable"],
)
def test_python_values_the_recording_read_record_again_when_changed(edit, message):
    eager, _, _ = _edited_run(False, edit)
    compiled, fn, caught = _edited_run(True, edit)
    _assert_runs_identical(eager, compiled)
    assert fn.records == 4 and fn.replays == 5  # two before the edit, two after
    assert any(message in m for m in caught), caught


def _reorder_children(model, opt, set_shift):
    """Swap the scale and the dropout of the Sequential: same names, same objects."""
    mods = model._modules
    items = list(mods.items())
    mods.clear()
    mods.update([items[0], items[2], items[1], items[3]])


def test_reordered_children_record_again():
    """The one-pass identity guard also sees a container's children change order."""
    eager, _, _ = _edited_run(False, _reorder_children)
    compiled, fn, caught = _edited_run(True, _reorder_children)
    _assert_runs_identical(eager, compiled)
    assert fn.records == 4 and fn.replays == 5
    changed = "the parameters, buffers, children or hooks of a Sequential changed"
    assert any(changed in m for m in caught)


def test_an_equal_value_set_again_still_replays():
    """An attribute set to an equal number (another object) fails the identity pass, and
    the check by value then finds the guard holding: no recording again."""
    two = float("2.0")  # a new float object, equal to the recorded 2.0

    def edit(model, opt, set_shift):
        model[1].scale = two

    eager, _, _ = _edited_run(False, edit)
    compiled, fn, caught = _edited_run(True, edit)
    _assert_runs_identical(eager, compiled)
    assert fn.records == 2 and fn.replays == 7 and not caught


def test_optimizer_hyperparameter_edits_are_read_by_the_replayed_step():
    """The replayed step reads every param_group afresh: an edit between calls takes
    effect without recording again."""

    def edit(model, opt, set_shift):
        opt.param_groups[0]["lr"] = 0.3
        opt.param_groups[0]["momentum"] = 0.9
        opt.param_groups[0]["weight_decay"] = 1e-2

    eager, _, _ = _edited_run(False, edit)
    compiled, fn, _ = _edited_run(True, edit)
    _assert_runs_identical(eager, compiled)
    assert fn.records == 2 and fn.replays == 7


def test_binary_cross_entropy_checks_each_replayed_input_as_eager_mode_does():
    def loss_and_grad(p, y):
        loss = F.binary_cross_entropy(p, y)
        loss.backward()
        return loss, p.grad

    compiled = tg.compile(loss_and_grad)
    y = tg.tensor(np.array([1.0, 0.0, 1.0], np.float32))

    def probabilities(*values):
        return tg.tensor(np.array(values, np.float32), requires_grad=True)

    for _ in range(3):  # recorded on inputs strictly inside (0, 1)
        compiled(probabilities(0.5, 0.5, 0.5), y)
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        compiled(probabilities(0.5, 1.5, 0.2), y)
    # an exact 0 or 1 takes the clamped log (-100, zero gradient) on replay as eagerly
    loss, grad = compiled(probabilities(0.0, 1.0, 0.2), y)
    expected, expected_grad = loss_and_grad(probabilities(0.0, 1.0, 0.2), y)
    assert compiled.records == 2 and compiled.replays == 3
    assert np.array_equal(loss._array, expected._array) and loss.item() > 60
    assert np.array_equal(grad._array, expected_grad._array)
    assert np.isfinite(grad._array).all()


def test_a_traceback_through_a_replay_shows_the_generated_lines():
    model = _mlp()
    compiled = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    xs, ys = _batches((5, 6), 4, n=3)
    for x, y in zip(xs, ys):
        compiled(x, y)
    bad = tg.tensor(np.array([0, 1, 2, 9, 0]))
    with pytest.raises(IndexError, match="target 9 is out of bounds for 4 classes") as info:
        compiled(xs[0], bad)
    assert compiled.replays == 2
    text = "".join(traceback.format_exception(info.value))
    # the replay's call of the loss's forward, which checks the targets, once
    assert "<tg.compile replay" in text and "_check_class_targets" in text


def test_tensors_returned_by_one_replay_do_not_change_when_the_next_runs():
    """Each replay computes new arrays: what an earlier call returned (the loss, an
    intermediate, a .grad of set_to_none) keeps its values, as eagerly."""
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    first = model[0].weight

    def step(x, y):
        opt.zero_grad()
        hidden = model[1](model[0](x))
        loss = F.cross_entropy(model[4](model[3](model[2](hidden))), y)
        loss.backward()
        opt.step()
        return loss, hidden

    compiled = tg.compile(step)
    xs, ys = _batches((5, 6), 4, n=6)
    kept = []
    for x, y in zip(xs, ys):
        loss, hidden = compiled(x, y)
        grad = first.grad
        kept.append(
            (loss, hidden, grad, loss._array.copy(), hidden._array.copy(), grad._array.copy())
        )
    assert compiled.replays == 4
    assert len({id(k[2]) for k in kept}) == len(kept)  # a new .grad each step, as eagerly
    for loss, hidden, grad, loss_then, hidden_then, grad_then in kept:
        assert np.array_equal(loss._array, loss_then)
        assert np.array_equal(hidden._array, hidden_then)
        assert np.array_equal(grad._array, grad_then)
    assert not np.array_equal(kept[-1][4], kept[-2][4])


def test_a_function_that_rebinds_what_it_closes_over_runs_eagerly_every_call():
    model = _Scale(1.0)
    calls = 0

    def fn(x):
        nonlocal calls
        calls += 1
        out = model(x) * float(calls)
        model.scale = float(calls)  # written after the forward has read it
        return out

    compiled = tg.compile(fn)
    x = tg.tensor(np.linspace(-1, 1, 4, dtype=np.float32))
    outs = [compiled(x)._array for _ in range(4)]
    assert calls == 4 and compiled.records == 4 and compiled.replays == 0
    scales = [1.0, 1.0, 2.0, 3.0]  # each call's forward reads the previous call's write
    expected = [np.tanh(x._array) * np.float32(s) * np.float32(k + 1) for k, s in enumerate(scales)]
    for out, want in zip(outs, expected):
        assert np.array_equal(out, want)


@pytest.mark.parametrize("block", [None, 16], ids=["whole", "blocked"])
def test_plain_sgd_replays_its_update_as_array_operations(monkeypatch, block):
    """A plain SGD step replays as ``w += -lr * g`` alone (no call of step()), bit-identical
    to eager, bumping the same version counters; an edit that makes a group use
    momentum is read by the same replay."""
    from tinygrad_init.optim import SGD

    if block is not None:  # parameters above the block size take _add_scaled's blocks
        monkeypatch.setattr(SGD, "_BLOCK", block)
    calls = []  # each run of step() asks for its closure's loss first
    closure_loss = SGD._closure_loss
    monkeypatch.setattr(SGD, "_closure_loss", lambda *a: calls.append(1) or closure_loss(*a))

    def build():
        model = _mlp()
        return model, optim.SGD(model.parameters(), lr=0.05)

    eager = _train(build, False)
    calls.clear()
    compiled = _train(build, True)
    _assert_identical(eager, compiled)
    assert compiled["fn"].replays == STEPS - 2 and len(calls) == 2  # the recordings
    versions = [[p._version for p in r["model"].parameters()] for r in (eager, compiled)]
    assert versions[0] == versions[1] == [STEPS + 1] * 6  # one write by the initialiser

    def edit(model, opt, set_shift):
        opt.param_groups[0]["momentum"] = 0.9
        opt.param_groups[0]["nesterov"] = True

    eager, _, _ = _edited_run(False, edit)
    calls.clear()
    compiled, fn, _ = _edited_run(True, edit)
    _assert_runs_identical(eager, compiled)
    assert fn.replays == 7 and len(calls) == 2


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_step_and_zero_grad_replay_without_calling_them(monkeypatch, name):
    """Each replay runs the flat updates of zero_grad and step (two layout checks, no
    call of step()), bit-identical to eager."""
    from tinygrad_init.optim.optimizer import Optimizer

    steps, checks = [], []
    closure_loss, holds = Optimizer._closure_loss, Optimizer._layout_holds
    monkeypatch.setattr(Optimizer, "_closure_loss", lambda *a: steps.append(1) or closure_loss(*a))
    monkeypatch.setattr(Optimizer, "_layout_holds", lambda *a: checks.append(1) or holds(*a))

    def build():
        model = _mlp()
        return model, OPTIMIZERS[name](model.parameters())

    eager = _train(build, False, steps=10)
    steps.clear()
    compiled = _train(build, True, steps=10)
    _assert_identical(eager, compiled)
    assert len(steps) == 2 and len(checks) == 2 * 8  # the two recordings call step()


def _replace_last(opt, extra):
    opt.param_groups[0]["params"][-1] = extra  # the last bias is no longer trained


@pytest.mark.parametrize(
    "momentum, edit",
    [
        (0.5, lambda opt, extra: opt.add_param_group({"params": [extra]})),
        (0.0, _replace_last),
    ],
    ids=["a group added", "a parameter replaced in its group's list"],
)
def test_a_changed_set_of_parameters_makes_zero_grad_and_step_run_in_full(momentum, edit):
    """After add_param_group, or a group's list edited in place (same list, same length,
    another tensor in it), the flat replays call the real zero_grad and step: the new
    parameter's .grad (set before each call) is cleared, then left alone, as eagerly."""

    def run(compiled):
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
        extra = tg.ones(3, requires_grad=True)
        xs, ys = _batches((5, 6), 4, n=8)

        def step(x, y):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        fn = tg.compile(step) if compiled else step
        for i, (x, y) in enumerate(zip(xs, ys)):
            if i == 4:
                edit(opt, extra)
            extra.grad = tg.ones(3)
            fn(x, y)
        return [p._array.copy() for p in model.parameters()], extra, fn

    (eager, extra_eager, _), (compiled, extra, fn) = run(False), run(True)
    assert all(np.array_equal(u, v) for u, v in zip(eager, compiled, strict=True))
    assert extra.grad is None and extra_eager.grad is None
    assert np.array_equal(extra._array, np.ones(3, dtype=np.float32))
    assert fn.records == 2 and fn.replays == 6


def test_a_loaded_state_dict_is_read_by_the_replayed_step():
    """load_state_dict replaces the groups (a new lr) and the state: the replay sees both."""

    def edit(model, opt, set_shift):
        state = opt.state_dict()
        state["param_groups"][0]["lr"] = 0.5
        opt.load_state_dict(state)

    eager, _, _ = _edited_run(False, edit)
    compiled, fn, _ = _edited_run(True, edit)
    _assert_runs_identical(eager, compiled)
    assert fn.records == 2 and fn.replays == 7


def test_debug_explains_a_call_after_one_that_ran_eagerly():
    model = _mlp()
    xs, _ = _batches((5, 6), 4, n=1)
    fn = tg.compile(lambda x: model(x).sum(), debug=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Monitor(model, every=1) as monitor:  # its hooks make each call run eagerly
            for _ in range(2):
                fn(xs[0])
                monitor.step()
    messages = [str(w.message) for w in caught]
    assert fn.records == 2 and fn.replays == 0
    assert any("ran eagerly and left no recording" in m for m in messages), messages


@pytest.mark.parametrize(
    "fn",
    [
        F.leaky_relu,
        F.elu,
        lambda x: F.softplus(x, beta=2.0, threshold=1.0),
        lambda x: F.huber_loss(x, x * 0, reduction="none"),
        lambda x: F.smooth_l1_loss(x, x * 0, reduction="none", beta=0.5),
    ],
    ids=["leaky_relu", "elu", "softplus", "huber_loss", "smooth_l1_loss"],
)
def test_a_branch_mask_is_computed_from_each_replayed_input(fn):
    """Two recordings whose inputs all take one branch of a piecewise function must not
    fix that branch for later inputs."""

    def value_and_grad(x):
        out = fn(x)
        out.sum().backward()
        return out, x.grad

    compiled = tg.compile(value_and_grad)
    for _ in range(3):
        compiled(tg.tensor(np.full(4, 0.25, np.float32), requires_grad=True))
    assert compiled.replays == 1
    data = np.array([-3.0, -0.5, 0.75, 3.0], np.float32)
    out, grad = compiled(tg.tensor(data, requires_grad=True))
    want, want_grad = value_and_grad(tg.tensor(data, requires_grad=True))
    assert compiled.replays == 2
    assert np.array_equal(out._array, want._array)
    assert np.array_equal(grad._array, want_grad._array)


def test_all_tensor_arguments_key_as_the_general_path_does():
    from tinygrad_init import replay

    a, b = tg.ones(2, 3), tg.zeros(4, dtype="float64", requires_grad=True)
    for args in [(a, b), (a, a), (b,), ()]:
        tensors, key = [], [("grad", True), ("dtype", tg.get_default_dtype())]
        replay._flatten(args, tensors, key)
        replay._flatten({}, tensors, key)
        key.append(("alias", replay._aliasing(tensors)))
        assert replay._tensors_key(args) == tuple(key)
    assert replay._tensors_key((a, nn.Parameter(tg.ones(1)))) is None
    assert replay._tensors_key((a, 1.0)) is None


def test_the_same_tensor_objects_record_again_when_their_key_changes():
    w = nn.Parameter(tg.ones(3))
    x, y = tg.ones(3), tg.full((3,), 2.0)

    def warm_then(change, message):
        fn = tg.compile(lambda x, y: (x * w + y).sum(), debug=True)
        for _ in range(3):
            fn(x, y)
        assert (fn.records, fn.replays) == (2, 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = change(fn)
        assert fn.records == 3
        assert message in str(caught[0].message), str(caught[0].message)
        return out

    warm_then(lambda fn: fn(x.requires_grad_(), y), "argument entry 1 changed")
    x.requires_grad_(False)
    warm_then(lambda fn: fn(x, x), "argument aliasing changed")

    def no_grad(fn):
        with tg.no_grad():
            return fn(x, y)

    def float64(fn):
        before = tg.get_default_dtype()
        tg.set_default_dtype("float64")
        try:
            return fn(x, y)
        finally:
            tg.set_default_dtype(before)

    def reshaped(fn):  # the same Tensor objects, holding arrays of another shape
        x._array, y._array, w._array = (np.full(4, v, np.float32) for v in (1.0, 2.0, 1.0))
        return fn(x, y)

    warm_then(no_grad, "grad mode changed")
    warm_then(float64, "the default dtype changed")
    out = warm_then(reshaped, "argument entry 1 changed")
    assert np.array_equal(out._array, np.float32(12.0))


def test_the_debug_message_compares_with_the_last_call_not_the_last_recording():
    """Keys A and B both replay; after a replay of A, a call that differs from A only in
    its second argument's shape is explained by that entry (B differs in the first)."""
    fn = tg.compile(lambda x, y: (x + y.sum()).sum(), debug=True)
    a, b = (tg.ones(3), tg.ones(2)), (tg.ones(4), tg.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # B's first call explains itself
        for args in (a, a, b, b, a):
            fn(*args)
    assert (fn.records, fn.replays) == (4, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(tg.ones(3), tg.ones(5))
    assert "argument entry 2 changed" in str(caught[0].message), str(caught[0].message)


def test_a_deleted_module_attribute_or_parameter_records_again():
    model = nn.Linear(3, 2)
    model.scale = 2.0
    fn = tg.compile(lambda x: (model(x) * model.scale).sum(), debug=True)
    x = tg.ones(4, 3)
    for _ in range(3):
        fn(x)
    del model.scale  # the guard's lookup of a missing name fails, it does not raise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(AttributeError):
            fn(x)
    assert "an attribute of a Linear changed (scale)" in str(caught[0].message)
    model.scale = 2.0
    for _ in range(3):
        fn(x)
    del model.bias
    model.register_parameter("bias", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(x)
    changed = "the parameters, buffers, children or hooks of a Linear changed"
    assert changed in str(caught[0].message)
    assert np.array_equal(out._array, ((x._array @ model.weight._array.T) * 2.0).sum())


def test_a_replay_checks_cross_entropy_targets_once_as_eager_mode_does():
    """The replay calls the loss's forward, which checks the targets: ignored targets
    give eager mode's loss and gradient, a bad one eager mode's IndexError."""
    model = _mlp()

    def loss_and_grad(x, y, ignore_index):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y, ignore_index=ignore_index)
        loss.backward()
        return loss, model[0].weight.grad

    xs, _ = _batches((5, 6), 4, n=1)
    plain = tg.tensor(np.array([0, 1, 2, 3, 0]))
    for ignore_index in (-100, 2):
        compiled = tg.compile(loss_and_grad)
        for y in (plain, plain, plain, tg.tensor(np.array([0, ignore_index, 3, ignore_index, 1]))):
            loss, grad = compiled(xs[0], y, ignore_index)
            expected, expected_grad = loss_and_grad(xs[0], y, ignore_index)
            assert np.array_equal(loss._array, expected._array)
            assert np.array_equal(grad._array, expected_grad._array)
        assert compiled.replays == 2
        for bad, shown in ((np.array([0, 1, 4, -1, 0]), 4), (np.array([-5, 1, 0, 0, 0]), -5)):
            with pytest.raises(
                IndexError, match=f"^cross_entropy: target {shown} is out of bounds for 4 classes$"
            ):
                compiled(xs[0], tg.tensor(bad), ignore_index)
            with pytest.raises(
                IndexError, match=f"^cross_entropy: target {shown} is out of bounds for 4 classes$"
            ):
                loss_and_grad(xs[0], tg.tensor(bad), ignore_index)
        assert compiled.replays == 4


class _Shift(nn.Module):
    """A module whose forward adds a buffer."""

    def __init__(self, n):
        super().__init__()
        self.register_buffer("shift", tg.zeros(n))

    def forward(self, x):
        return x + self.shift


def _buffer_run(compiled, edit, training, at=5, steps=9):
    """Losses, parameters and buffers of a run whose ``edit(model)`` happens before step
    ``at``; the model has a BatchNorm1d (in ``training`` mode or not) and a _Shift."""
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), _Shift(8), nn.Linear(8, 2))
    model.train(training)
    opt = optim.SGD(model.parameters(), lr=0.1)
    xs, ys = _batches((5, 4), 2, n=steps)
    step = _train_step(model, opt)
    fn = tg.compile(step) if compiled else step
    losses = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i == at:
            edit(model)
        losses.append(fn(x, y).detach()._array.copy())
    arrays = [t._array.copy() for t in (*model.parameters(), *model.buffers())]
    return dict(losses=losses, params=arrays), fn


def _load_running_mean(model):
    state = model.state_dict()
    state["1.running_mean"] = tg.full((8,), 0.5)
    model.load_state_dict(state)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    "edit, records",
    [
        (lambda m: setattr(m[1], "running_mean", tg.full((8,), 0.5)), 4),
        (lambda m: m[1].register_buffer("running_var", tg.full((8,), 2.0)), 4),
        (lambda m: m[2]._buffers.__setitem__("shift", tg.full((8,), 0.25)), 4),
        (lambda m: setattr(m[2], "shift", tg.full((8,), 0.25)), 4),
        (lambda m: m[3]._parameters.__setitem__("bias", nn.Parameter(tg.ones(2))), 4),
        (lambda m: m._modules.__setitem__("3", nn.Linear(8, 2)), 4),
        (_load_running_mean, 2),  # copied into the same array: replayed as it is
    ],
    ids=["attribute", "register_buffer", "buffers-dict", "custom-buffer", "parameters-dict",
         "child", "load_state_dict"],
)  # fmt: skip
def test_a_replaced_buffer_parameter_or_child_is_read_by_the_next_call(edit, records, training):
    eager, _ = _buffer_run(False, edit, training)
    compiled, fn = _buffer_run(True, edit, training)
    _assert_runs_identical(eager, compiled)
    assert fn.records == records and fn.replays == 9 - records


class _Tied(nn.Module):
    """A forward that reads its child's weight without calling the child."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4)

    def forward(self, x):
        return F.linear(x, self.embed.weight)


_GLOBAL_LINEAR = nn.Linear(4, 2)


def _read_global_linear(x):
    return F.linear(x, _GLOBAL_LINEAR.weight).sum()


def test_modules_read_without_being_called_are_guarded():
    """A child read by its parent's forward, a module the function closes over and one it
    names as a global: a parameter replaced in any of them records again."""
    tied, closed = _Tied(), nn.Linear(4, 2)
    cases = [
        (lambda x: tied(x).sum(), lambda: tied.embed),
        (lambda x: F.linear(x, closed.weight, closed.bias).sum(), lambda: closed),
        (_read_global_linear, lambda: _GLOBAL_LINEAR),
    ]
    x = tg.ones(3, 4)
    for fn, module in cases:
        compiled = tg.compile(fn)
        for _ in range(3):
            compiled(x)
        module().weight = nn.Parameter(tg.full(tuple(module().weight.shape), 0.5))
        assert np.array_equal(compiled(x)._array, fn(x)._array)
        assert compiled.records == 3


def _hook(module, args):
    return None


_hook.compile_guard = lambda: True


@pytest.mark.parametrize(
    "write",
    [
        lambda m: setattr(m[0], "scale", 2.0),
        lambda m: delattr(m[0], "bias"),
        lambda m: m.train(False),
        lambda m: m[0].register_buffer("extra", tg.ones(2)),
        lambda m: m[0]._parameters.pop("bias"),
        lambda m: m[0]._parameters.popitem(),
        lambda m: m[0]._parameters.setdefault("extra", None),
        lambda m: m[0]._parameters.update(extra=None),
        lambda m: m[0]._parameters.__ior__({"extra": None}),
        lambda m: m[0]._parameters.move_to_end("weight"),
        lambda m: m._modules.__delitem__("1"),
        lambda m: m._modules.clear(),
        lambda m: m[0].register_forward_pre_hook(_hook),
        lambda m: m[0].register_forward_pre_hook(_hook, prepend=True),
        lambda m: m[0].__setstate__(dict(m[0].__dict__)),
    ],
    ids=["setattr", "delattr", "eval", "register_buffer", "pop", "popitem", "setdefault",
         "update", "ior", "move_to_end", "delitem", "clear", "hook", "hook-prepend",
         "setstate"],
)  # fmt: skip
def test_every_module_write_a_replay_relies_on_is_counted(write):
    from tinygrad_init.nn.modules import module

    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    handle = model[0].register_forward_hook(lambda *a: None)
    before = module._mutations
    write(model)
    assert module._mutations > before
    before = module._mutations
    handle.remove()
    assert module._mutations > before


def test_copies_of_a_module_count_their_writes():
    import copy
    import pickle

    from tinygrad_init.nn.modules import module

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.state_dict().keys() == model.state_dict().keys()
        before = module._mutations
        other[1]._buffers["running_mean"] = tg.ones(2)
        assert module._mutations > before


def test_the_identity_pass_runs_only_after_a_module_write():
    model = _mlp()
    fn = tg.compile(lambda x: model(x).sum())
    xs, _ = _batches((5, 6), 4, n=1)
    for _ in range(3):
        fn(xs[0])
    (tape, _), passes = next(iter(fn.cache.values())), []
    identities = tape.identity_guards
    tape.identity_guards = lambda: passes.append(1) or identities()
    fn(xs[0])
    fn(xs[0])
    assert passes == [] and fn.replays == 3
    model.train()  # a write: checked once, and the guards hold
    fn(xs[0])
    fn(xs[0])
    assert passes == [1] and fn.replays == 5


class _Weights(nn.Module):
    """A forward that reads a list attribute."""

    def __init__(self):
        super().__init__()
        self.weights = [1.0, 2.0]

    def forward(self, x):
        return x * self.weights[0] + self.weights[1]


def test_lists_edited_in_place_record_again():
    """An edit in place writes no module: the lists a recording read are compared by value
    on every call."""
    module, offsets = _Weights(), [0.5]
    fn = tg.compile(lambda x: (module(x) + offsets[0]).sum())
    x = tg.ones(3)
    for edit in (lambda: module.weights.__setitem__(0, 3.0), lambda: offsets.__setitem__(0, 2.0)):
        for _ in range(3):
            fn(x)
        records = fn.records
        edit()
        assert np.array_equal(fn(x)._array, (module(x) + offsets[0]).sum()._array)
        assert fn.records == records + 1


def test_a_parameter_cast_in_place_records_again():
    """Module.to keeps the Parameter objects and gives them new arrays of another dtype:
    the leaf guards see it."""
    model = _mlp()
    fn = tg.compile(lambda x: model(x).sum(), debug=True)
    xs, _ = _batches((5, 6), 4, n=1)
    for _ in range(3):
        fn(xs[0])
    model.double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(xs[0])
    assert "changed shape, dtype or requires_grad" in str(caught[0].message)
    expected = model(xs[0]).sum()._array
    assert out._array.dtype == expected.dtype == np.float64
    assert np.array_equal(out._array, expected)
