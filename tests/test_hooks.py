"""Bad names stop the bake with one clear line and leave nothing behind."""

import subprocess
import sys

import pytest

from .helpers import TEMPLATE


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("package=1bad", "package='1bad' is not a valid Python package name"),
        ("package=my-pkg", "package='my-pkg' is not a valid Python package name"),
        ("package=class", "package='class' clashes with a Python keyword"),
        ("package=json", "package='json' clashes with a Python keyword or standard-library module"),
        ("project=Bad_Project!", "project='Bad_Project!' is not a valid project slug"),
        ("backbone=vgg16", "backbone='vgg16' is not a backbone: use one of efficientnet_lite0,"),
        ("backbone=timm:convnext_tinny", "backbone='timm:convnext_tinny': timm 1.0"),
    ],
)
def test_bad_names_fail_with_a_message_and_leave_no_folder(tmp_path, answer, message):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE), answer],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_good_bake_prints_the_next_steps(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "make pipeline" in result.stdout and (tmp_path / "solar-cell-inspection").is_dir()


def test_the_hooks_backbones_are_the_projects():
    """The pre-gen hook cannot import the project: its list of backbone names is a copy, held equal here."""
    import ast

    hook = (TEMPLATE / "hooks" / "pre_gen_project.py").read_text()
    choices = TEMPLATE / "{{cookiecutter.project}}" / "src" / "{{cookiecutter.package}}" / "core" / "choices.py"
    names: list[str] = []
    for node in ast.walk(ast.parse(hook)):
        if isinstance(node, (ast.Assign, ast.AugAssign)) and "BACKBONES" in ast.unparse(node).split("=")[0]:
            names += ast.literal_eval(node.value)
    namespace: dict = {}
    exec(compile(choices.read_text(), str(choices), "exec"), namespace)
    assert sorted(names) == sorted(namespace["BACKBONES"])
    assert namespace["TIMM_NAME"] in hook, "the hook checks the same form of a timm name"
