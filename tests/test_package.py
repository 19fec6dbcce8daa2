"""What a new user meets first: the version, the core importing with only numpy, and the
main job's dependencies checked before any training."""

import os
import shutil
import subprocess
import sys

import pytest

import tinygrad_init as tg
from tinygrad_init import cli, study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Refuses to import anything but numpy and the standard library's own modules.
BLOCKER = """
import sys
BLOCKED = ("graphviz", "matplotlib", "safetensors", "threadpoolctl", "sklearn", "scipy",
           "torch", "hypothesis")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
"""


def test_version_is_the_packages_and_the_commands(capsys):
    import importlib.metadata

    assert tg.__version__ == importlib.metadata.version("tinygrad_init")
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinygrad-init {tg.__version__}"


def test_the_core_imports_and_trains_with_only_numpy():
    code = (
        BLOCKER
        + """
import tinygrad_init as tg
from tinygrad_init import nn, optim
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
loss = (model(tg.randn(5, 3)) ** 2).mean()
loss.backward()
opt.step()
assert not any(m in sys.modules for m in ("graphviz", "matplotlib", "safetensors"))
try:
    tg.viz
except ImportError as e:
    print("viz:", e)
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "viz: blocked: graphviz"


def test_viz_is_loaded_on_first_use():
    assert tg.viz.gradient_flow is not None and "viz" in tg.__all__
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        tg.nothing  # noqa: B018


def test_demo_without_dot_stops_before_training(monkeypatch, capsys, tmp_path):
    trained = []
    monkeypatch.setattr(study, "run_study", lambda *a, **k: trained.append(1))
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "dot" else real_which(name))
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "tinygrad-init: error: drawing the report needs graphviz's 'dot' program "
        "(apt install graphviz, brew install graphviz or conda install graphviz)"
    )
    assert not trained and os.listdir(tmp_path) == []


def test_demo_without_matplotlib_or_graphviz_names_both(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "graphviz", None)
    monkeypatch.setattr(study, "run_study", lambda *a, **k: pytest.fail("trained"))
    assert cli.main(["demo", "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "the graphviz Python package (pip install graphviz)" in err
    assert "matplotlib (pip install matplotlib)" in err
    assert len(err.strip().splitlines()) == 1


def test_the_package_has_a_license_file():
    text = open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    assert text.startswith("MIT License")
    pyproject = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject
