"""PyTorch-style scripts run with their imports swapped to tinygrad_init.

Each script in ``scripts/`` is written against ``torch`` and leaves a ``RESULT`` dict:
``RESULT["exact"]`` holds values computed from identical inputs (numpy-made data and
weights), compared with the same script under torch to 1e-6; ``RESULT["loss"]``, where
present, is a final training loss that depends on random draws, which differ between
the two libraries, so it is compared within the tolerance in ``LOSSES``.  The
scripts are run with nothing changed but their import lines (``swap_imports``).
"""

import pathlib
import re

import numpy as np
import pytest

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py"))

# (script, RESULT key) -> (relative tolerance against torch, bound without torch) for
# final losses that depend on random draws (which differ between the libraries) or on
# chaotic optimizer dynamics
LOSSES = {
    ("mnist_mlp", "loss"): (1.0, 0.1),
    ("polynomial_fit", "loss"): (1e-6, 20.0),
    ("polynomial_fit", "rmsprop_loss"): (0.5, 200.0),
    ("regression", "loss"): (10.0, 1e-2),
    ("makemore_batchnorm", "loss"): (0.15, 2.6),
}

_IMPORT = re.compile(r"^(\s*)(import|from) torch(\.[\w.]+)?( as \w+| import .*)?$")


def swap_imports(source):
    """The script with ``torch`` replaced by ``tinygrad_init`` in its import lines only:
    ``import torch`` -> ``import tinygrad_init as torch``, ``import torch.nn as nn`` ->
    ``import tinygrad_init.nn as nn``, ``from torch.x import y`` -> ``from
    tinygrad_init.x import y``."""
    out = []
    for text in source.splitlines():
        match = _IMPORT.match(text)
        if match:
            indent, keyword, sub, rest = match.groups()
            if keyword == "import" and rest is None:
                if sub:
                    raise ValueError(f"scripts write 'import torch.x as name', not {text!r}")
                rest = " as torch"
            text = f"{indent}{keyword} tinygrad_init{sub or ''}{rest}"
        out.append(text)
    return "\n".join(out) + "\n"


def run(name, swap):
    path = SCRIPTS / f"{name}.py"
    source = path.read_text()
    if swap:
        source = swap_imports(source)
    namespace = {"__name__": f"conformance_{name}"}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace["RESULT"]


def _compare(ours, theirs, where):
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs), where
        for key in theirs:
            _compare(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)) and theirs and not isinstance(theirs[0], (int, float)):
        assert len(ours) == len(theirs), where
        for k, (a, b) in enumerate(zip(ours, theirs)):
            _compare(a, b, f"{where}[{k}]")
    elif isinstance(theirs, (bool, str)) or theirs is None:
        assert ours == theirs, where
    else:
        a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        assert a.shape == b.shape, where
        scale = np.maximum(1.0, np.abs(b))
        err = np.max(np.abs(a - b) / scale, initial=0.0)
        assert err <= 1e-6, f"{where}: max relative difference {err:.3g}"


def max_difference(ours, theirs):
    """The largest |ours - theirs| over every number in two RESULT['exact'] trees."""
    if isinstance(theirs, dict):
        return max((max_difference(ours[k], theirs[k]) for k in theirs), default=0.0)
    if isinstance(theirs, (list, tuple)) and theirs and not isinstance(theirs[0], (int, float)):
        return max((max_difference(a, b) for a, b in zip(ours, theirs)), default=0.0)
    if isinstance(theirs, str) or theirs is None:
        return 0.0
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return float(np.max(np.abs(a - b), initial=0.0))


def test_swap_imports_changes_only_import_lines():
    src = (
        "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\n"
        "x = torch.ones(2)\n"
    )
    assert swap_imports(src) == (
        "import tinygrad_init as torch\nimport tinygrad_init.nn as nn\n"
        "from tinygrad_init.utils.data import DataLoader\nx = torch.ones(2)\n"
    )


@pytest.mark.parametrize("name", NAMES)
def test_script_runs_with_the_import_swapped(name):
    result = run(name, swap=True)
    for (script, key), (_, bound) in LOSSES.items():
        if script == name:
            assert result[key] < bound, f"{name}: {key} {result[key]:.4g} >= {bound}"


@pytest.mark.parametrize("name", NAMES)
def test_script_matches_torch(name):
    pytest.importorskip("torch")
    ours, theirs = run(name, swap=True), run(name, swap=False)
    _compare(ours["exact"], theirs["exact"], name)
    for (script, key), (tol, _) in LOSSES.items():
        if script == name:
            assert abs(ours[key] - theirs[key]) <= tol * abs(theirs[key]) + 1e-4, key
