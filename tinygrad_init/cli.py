"""The ``tinygrad-init`` command: see gradients vanish or explode from the shell.

    tinygrad-init demo                       # the initialization study and its report
    tinygrad-init flow --depth 30 --activation sigmoid --init normal -o flow.svg
    tinygrad-init graph --depth 4 --activation tanh --init xavier_normal -o graph.png
    tinygrad-init stats --depth 20 --activation relu --init kaiming_normal --steps 5
    tinygrad-init flow path/to/model.py:make_model -o flow.pdf

The model is either built from a spec (``--depth --width --activation --init --layer``)
or returned by a function in a Python file (``path.py:function``, default function name
``make_model``): a Module, or ``(Module, example_batch)`` where the batch is ``x`` or
``(x, y)``.  The data is a synthetic batch (``x ~ N(0, 1)``, targets ``~ N(0, 1)``) unless
the factory gives one.  The output format comes from the file name: .svg .png .pdf .dot.

Subcommands live in :data:`COMMANDS` (name -> :class:`Command`); ``demo`` is defined in
:mod:`tinygrad_init.demo`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

__all__ = [
    "main",
    "Command",
    "COMMANDS",
    "UsageError",
    "add_model_arguments",
    "load_model",
    "add_output_argument",
    "require_renderers",
    "write_diagram",
]

PROG = "tinygrad-init"


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


@dataclass(frozen=True)
class Command:
    help: str
    configure: object  # configure(parser) adds the subcommand's arguments
    run: object  # run(args) -> exit code


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) with exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------------------
# Models


def add_model_arguments(parser):
    """The model-spec and data options shared by every subcommand."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "model",
        nargs="?",
        metavar="FILE.py[:FUNCTION]",
        help="build the model with FUNCTION (default make_model) from FILE.py; "
        "it returns a Module or (Module, batch)",
    )
    g.add_argument(
        "--layer",
        choices=("linear", "conv"),
        default="linear",
        help="layer type of the spec model (default linear)",
    )
    g.add_argument(
        "--arch",
        choices=("mlp", "resnet", "transformer"),
        default="mlp",
        help="spec model family (default mlp): mlp (or a CNN with --layer conv), resnet "
        "(--depth residual blocks; --layer conv for conv blocks), transformer (--depth "
        "encoder layers of width --width on synthetic tokens)",
    )
    g.add_argument(
        "--branch-scale",
        default="none",
        help="resnet: none, zero, sqrt_depth, gpt2, fixup, rezero or a number; "
        "transformer: none, zero, sqrt_depth, gpt2 or a number (default none)",
    )
    g.add_argument(
        "--norm",
        choices=("none", "batch", "layer"),
        default="none",
        help="resnet: normalization inside the branches (default none)",
    )
    g.add_argument(
        "--heads", type=_positive_int, default=4, help="transformer: attention heads (default 4)"
    )
    g.add_argument(
        "--post-ln",
        action="store_true",
        help="transformer: LayerNorm after each residual addition (default pre-LN)",
    )
    g.add_argument(
        "--depth", type=_positive_int, default=10, help="number of weighted layers (default 10)"
    )
    g.add_argument(
        "--width",
        type=_positive_int,
        default=32,
        help="hidden width, or channels for --layer conv (default 32)",
    )
    g.add_argument(
        "--activation",
        default="relu",
        help="relu, leaky_relu, tanh, sigmoid, gelu, silu, elu, selu, softplus, "
        "linear (default relu)",
    )
    g.add_argument(
        "--init",
        default="kaiming_normal",
        help="weight init by registry name: normal (N(0,1)), small_normal, "
        "xavier_normal, kaiming_normal, he_normal, lecun_normal, "
        "orthogonal, ... (default kaiming_normal)",
    )
    g.add_argument(
        "--in-features",
        type=_positive_int,
        default=32,
        help="input features of the MLP (default 32)",
    )
    g.add_argument(
        "--in-channels",
        type=_positive_int,
        default=3,
        help="input channels for --layer conv (default 3)",
    )
    g.add_argument(
        "--out-features", type=_positive_int, default=10, help="output features (default 10)"
    )
    g.add_argument(
        "--image-size",
        type=_positive_int,
        default=8,
        help="image side for --layer conv (default 8)",
    )
    g.add_argument(
        "--batch", type=_positive_int, default=64, help="synthetic batch size (default 64)"
    )
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t = parser.add_argument_group("classification")
    t.add_argument(
        "--vanishing",
        type=_positive_float,
        default=1e-2,
        help="gradient ratio to the last layer below which a layer is vanishing (default 1e-2)",
    )
    t.add_argument(
        "--exploding",
        type=_positive_float,
        default=1e2,
        help="ratio above which a layer is exploding (default 1e2)",
    )


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _from_file(spec):
    from . import nn

    path, _, func = spec.partition(":")
    func = func or "make_model"
    if not path.endswith(".py"):
        raise UsageError(f"model file must be a .py file (FILE.py:FUNCTION), got {spec!r}")
    if not os.path.isfile(path):
        raise UsageError(f"model file not found: {path}")
    name = "_tinygrad_init_user_model"
    try:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise UsageError(f"could not import {path}: {type(e).__name__}: {_one_line(e)}") from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise UsageError(f"{path} has no function {func!r}")
    try:
        result = factory()
    except Exception as e:
        raise UsageError(f"{path}:{func}() failed: {type(e).__name__}: {_one_line(e)}") from None
    batch = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        result, batch = result
    if not isinstance(result, nn.Module):
        raise UsageError(
            f"{path}:{func}() returned {type(result).__name__}; expected an "
            "nn.Module or (Module, example_batch)"
        )
    return result, batch


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else ""


def load_model(args):
    """``(model, x, y, description)`` from parsed model arguments (see add_model_arguments)."""
    import numpy as np

    from . import models
    from .tensor import Tensor

    gen = np.random.default_rng(args.seed)
    if args.model:
        model, batch = _from_file(args.model)
        x = y = None
        if batch is not None:
            x, y = batch if isinstance(batch, (tuple, list)) and len(batch) == 2 else (batch, None)
            x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))
            if y is not None and not isinstance(y, Tensor):
                y = Tensor(np.asarray(y))
        else:
            try:
                x, y = models.synthetic_batch(
                    model, batch=args.batch, image_size=args.image_size, generator=gen
                )
            except ValueError as e:
                raise UsageError(f"{e}: return (model, example_batch) from the factory") from None
        return model, x, y, os.path.basename(args.model)
    if getattr(args, "arch", "mlp") != "mlp":
        return _load_residual_model(args, gen)
    try:
        if args.layer == "conv":
            model = models.make_cnn(
                args.depth,
                args.width,
                args.activation,
                args.init,
                in_channels=args.in_channels,
                image_size=args.image_size,
                out_features=args.out_features,
                generator=gen,
            )
        else:
            model = models.make_mlp(
                args.depth,
                args.width,
                args.activation,
                args.init,
                args.in_features,
                args.out_features,
                generator=gen,
            )
    except (ValueError, TypeError) as e:
        raise UsageError(_one_line(e)) from None
    x, y = models.synthetic_batch(
        model, batch=args.batch, image_size=args.image_size, generator=gen
    )
    kind = "CNN" if args.layer == "conv" else "MLP"
    desc = f"{args.depth}-layer {kind}, width {args.width}, {args.activation}, init {args.init}"
    return model, x, y, desc


def _branch_scale(text):
    try:
        return float(text)
    except ValueError:
        return text


def _load_residual_model(args, gen):
    """``(model, x, y, description)`` for ``--arch resnet`` and ``--arch transformer``."""

    from . import models
    from .tensor import Tensor

    scale = _branch_scale(args.branch_scale)
    try:
        if args.arch == "resnet":
            model = models.make_resnet(
                args.depth,
                args.width,
                branch_scale=scale,
                norm=None if args.norm == "none" else args.norm,
                activation=args.activation,
                init=args.init,
                kind="conv" if args.layer == "conv" else "mlp",
                in_features=args.in_features,
                out_features=args.out_features,
                in_channels=args.in_channels,
                image_size=args.image_size,
                generator=gen,
            )
            x, y = models.synthetic_batch(
                model, batch=args.batch, image_size=args.image_size, generator=gen
            )
            kind = "conv ResNet" if args.layer == "conv" else "ResNet"
        else:
            vocab, length = args.out_features, 16
            model = models.make_transformer(
                args.depth,
                args.width,
                args.heads,
                norm_first=not args.post_ln,
                residual_scale=scale,
                vocab_size=vocab,
                max_len=length,
                generator=gen,
            )
            x, y = Tensor(gen.integers(0, vocab, (args.batch, length))), None
            kind = "pre-LN transformer" if not args.post_ln else "post-LN transformer"
    except (ValueError, TypeError) as e:
        raise UsageError(_one_line(e)) from None
    desc = f"{args.depth}-block {kind}, width {args.width}, branch scale {args.branch_scale}"
    return model, x, y, desc


def _loss(output, y):
    """MSE for float targets of the output's shape, cross-entropy for integer labels."""
    import numpy as np

    from .models import mse
    from .tensor import Tensor

    if y is None:
        rng = np.random.default_rng(0)
        y = Tensor(rng.standard_normal(output.shape).astype(output.dtype))
    if np.issubdtype(y.dtype, np.integer) and output.ndim == 2 and y.ndim == 1:
        logp = output.log_softmax(1)
        return -(logp[np.arange(len(y._array)), y._array]).mean()
    if tuple(y.shape) != tuple(output.shape):
        raise UsageError(
            f"the example batch's target has shape {tuple(y.shape)} but the "
            f"model's output has shape {tuple(output.shape)}"
        )
    return mse(output, y)


def _thresholds(args):
    from .diagnostics import Thresholds

    try:
        return Thresholds(args.vanishing, args.exploding)
    except ValueError as e:
        raise UsageError(_one_line(e)) from None


# ----------------------------------------------------------------------------------------
# Output


def require_renderers(dot=True, matplotlib=True):
    """Check, before any work, what drawing needs: the graphviz package and its ``dot``
    program, and matplotlib.  Raises UsageError with one line saying what to install."""
    missing = []
    try:
        import graphviz  # noqa: F401
    except ImportError:
        missing.append("the graphviz Python package (pip install graphviz)")
    if dot and shutil.which("dot") is None:
        missing.append(
            "graphviz's 'dot' program (apt install graphviz, brew install graphviz or "
            "conda install graphviz)"
        )
    if matplotlib:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            missing.append("matplotlib (pip install matplotlib)")
    if missing:
        raise UsageError("drawing the report needs " + " and ".join(missing))


def add_output_argument(parser, default):
    parser.add_argument(
        "-o",
        "--output",
        default=default,
        help=f"output file; the format comes from the extension: .svg .png "
        f".pdf .dot (default {default})",
    )


def write_diagram(dot, path):
    """Render ``dot`` to ``path``; without the ``dot`` program write the .dot source and
    say how to install graphviz.  Returns the exit code."""
    import graphviz

    from .viz.files import FORMATS, render, write_source

    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(
            f"cannot tell the output format of {path!r}: use one of {', '.join(FORMATS)}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"output directory does not exist: {directory}")
    if FORMATS[ext] != "dot" and shutil.which("dot") is None:
        return _without_dot(dot, path, write_source)
    try:
        render(dot, path)
    except graphviz.ExecutableNotFound:
        return _without_dot(dot, path, write_source)
    print(f"wrote {path}")
    return 0


def _without_dot(dot, path, write_source):
    source = os.path.splitext(path)[0] + ".dot"
    write_source(dot, source)
    fmt = os.path.splitext(path)[1][1:]
    print(
        f"{PROG}: the graphviz 'dot' program is not installed, so {path} was not drawn; "
        f"wrote the source to {source}. Install graphviz (apt install graphviz, brew "
        f"install graphviz or conda install graphviz), then run: "
        f"dot -T{fmt} {source} -o {path}",
        file=sys.stderr,
    )
    return 0


# ----------------------------------------------------------------------------------------
# Subcommands


def _configure_graph(p):
    add_model_arguments(p)
    add_output_argument(p, "graph.svg")
    p.add_argument(
        "--metric",
        choices=("norm", "rms", "mean_abs", "max_abs"),
        default="norm",
        help="gradient magnitude shown in each node (default norm)",
    )
    p.add_argument(
        "--max-nodes",
        type=_positive_int,
        default=300,
        help="above this many nodes, modules collapse into one node (default 300)",
    )


def _run_graph(args):
    from . import viz

    model, x, y, desc = load_model(args)
    with viz.trace_modules(model) as trace:
        loss = _loss(model(x), y)
    dot = viz.draw_graph(
        loss,
        modules=trace,
        metric=args.metric,
        thresholds=_thresholds(args),
        max_nodes=args.max_nodes,
        title=f"Op graph: {desc}",
    )
    return write_diagram(dot, args.output)


def _configure_flow(p):
    add_model_arguments(p)
    add_output_argument(p, "flow.svg")
    p.add_argument(
        "--per-row",
        type=_positive_int,
        default=None,
        help="layers per row (default 10, or all when there are at most 12)",
    )


def _run_flow(args):
    from . import viz

    model, x, y, desc = load_model(args)
    dot = viz.gradient_flow(
        model,
        x,
        y,
        loss_fn=_loss,
        thresholds=_thresholds(args),
        per_row=args.per_row,
        title=f"Gradient flow: {desc}",
    )
    return write_diagram(dot, args.output)


def _configure_stats(p):
    add_model_arguments(p)
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=1,
        help="training steps of plain SGD to record (default 1)",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=0.01,
        help="SGD learning rate for --steps (default 0.01)",
    )
    p.add_argument("--csv", default=None, help="also write every record to this CSV file")


def _run_stats(args):
    from threadpoolctl import threadpool_limits

    from ._progress import terminal_progress
    from .diagnostics import Monitor

    model, x, y, desc = load_model(args)
    params = list(model.parameters())
    progress = terminal_progress()
    total = args.steps + 1
    # one BLAS thread, as gradient_flow's own pass: the matrices are batch x width
    with (
        threadpool_limits(limits=1, user_api="blas"),
        Monitor(model, thresholds=_thresholds(args), sample_size=0) as mon,
    ):
        for step in range(args.steps):
            progress(step, total, f"stats: recording step {step + 1}/{args.steps}")
            for p in params:
                p.grad = None
            loss = _loss(model(x), y)
            loss.backward()
            mon.step()
            for p in params:
                if p.grad is not None:
                    p._array -= args.lr * p.grad._array
    progress(args.steps, total, "stats: summarising")
    summary, verdict = mon.summary(), mon.verdict()
    progress(total, total, "stats: done")
    print(f"{desc}\n")
    print(summary)
    print()
    print(verdict)
    if args.csv:
        directory = os.path.dirname(os.path.abspath(args.csv))
        if not os.path.isdir(directory):
            raise UsageError(f"output directory does not exist: {directory}")
        mon.to_csv(args.csv)
        print(f"\nwrote {args.csv}")
    return 0


COMMANDS = {
    "graph": Command(
        "render the op-level graph, coloured by gradient magnitude", _configure_graph, _run_graph
    ),
    "flow": Command("render the layer-level gradient-flow diagram", _configure_flow, _run_flow),
    "stats": Command(
        "print per-layer statistics, the theory beside them, and a verdict",
        _configure_stats,
        _run_stats,
    ),
}


def _configure_demo(parser):
    from .demo import configure  # imported on use: demo itself imports this module

    configure(parser)


def _run_demo(args):
    from .demo import run

    return run(args)


COMMANDS["demo"] = Command(
    "train a deep MLP under every activation x initialization and "
    "write an HTML report (the main job)",
    _configure_demo,
    _run_demo,
)


def build_parser():
    parser = _Parser(
        prog=PROG,
        description="See vanishing and exploding gradients: op "
        "graphs and layer-level flow diagrams coloured by gradient magnitude, "
        "and per-layer statistics with a verdict.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')")
        return args._run(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the model's own forward/backward failed: one line, no traceback
        print(f"{PROG}: error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: nothing written", file=sys.stderr)
        return 130


def _console():
    sys.exit(main())


if __name__ == "__main__":
    _console()
