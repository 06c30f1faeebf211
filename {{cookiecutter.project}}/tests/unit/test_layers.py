"""The package's layers hold: ``orchestration`` over the stages over ``core``, no import circles, and settings
checked without loading any stage or torch. The contract is the ``[tool.importlinter]`` section of
pyproject.toml, checked by import-linter itself."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.imports import import_circles

import {{ cookiecutter.package }} as package

PROJECT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def lint_imports(project: Path, source: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(source)}  # the copy under test, ahead of the installed package
    return subprocess.run(
        [*LINT_IMPORTS, "--no-cache"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_layer_contract_holds():
    result = lint_imports(PROJECT, PROJECT / "src")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/paths.py", "from ..modeling import steps as _steps", "core is not allowed to import"),
        ("core/paths.py", "import torch as _torch", "core is not allowed to import torch"),
        ("deployment/service/app.py", "from ...modeling import model as _model", "is not allowed to import"),
        ("acquisition/splits.py", "from ..deployment import steps as _steps", "acquisition is not allowed to import"),
    ],
)
def test_the_contract_fails_when_an_import_points_the_wrong_way(tmp_path, module, line, broken):
    """A copy of the package with one forbidden import added: import-linter must refuse it."""
    name = package.__name__
    copy = tmp_path / "src" / name
    shutil.copytree(Path(package.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as f:
        f.write(f"\n{line}  # noqa\n")
    shutil.copy(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode == 1, result.stdout[-3000:]
    assert broken in result.stdout


def test_no_import_circles():
    assert import_circles(package.__name__) == []


def test_import_circles_are_found(tmp_path, monkeypatch):
    """The circle finder itself, on a package whose modules import each other through a third."""
    root = tmp_path / "circular_sample"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from . import b  # inside a function: counts all the same\n")
    (root / "b.py").write_text("from . import c\n")
    (root / "c.py").write_text("from .a import f\n")
    (root / "d.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles("circular_sample") == [["circular_sample.a", "circular_sample.b", "circular_sample.c"]]


def test_settings_are_checked_without_any_stage_or_torch():
    code = (
        f"import {package.__name__}.core.config, sys; "
        f"print([m for m in sys.modules if m.startswith('{package.__name__}.') and '.core' not in m "
        "or m.split('.')[0] in ('torch', 'torchvision', 'sklearn')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
