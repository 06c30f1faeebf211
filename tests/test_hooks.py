"""Bad names stop the bake with one clear line and leave nothing behind; a good bake prints the next steps and
is linked to its template commit (``.cruft.json``) when the template is a git checkout."""

import json
import shutil
import subprocess
import sys

import cruft
import pytest

from .helpers import TEMPLATE, git, template_repository


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


def test_a_bake_from_a_git_checkout_is_linked_to_its_commit_for_cruft(tmp_path, capfd):
    template = template_repository(tmp_path / "template")
    result = subprocess.run(  # the README's way: cookiecutter on a relative path
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "--output-dir",
            str(tmp_path / "out"),
            ".",
            "dataset=digits",
        ],
        cwd=template,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cannot" not in result.stdout
    project = tmp_path / "out" / "solar-cell-inspection"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template) and state["commit"] == git(template, "rev-parse", "HEAD").strip()
    assert (
        state["context"]["cookiecutter"]["dataset"] == "digits"
        and "_output_dir" not in state["context"]["cookiecutter"]
    )
    assert cruft.check(project)
    capfd.readouterr()
    same = cruft.diff(project, exit_code=True)  # cruft re-bakes the template: the hook runs again, in a subprocess
    printed = capfd.readouterr().out
    assert same, printed  # the re-bake equals the bake
    assert "Next steps" not in printed and not printed.strip()  # a re-bake is not a first bake: the hook is quiet


def test_a_bake_from_a_plain_folder_says_once_why_it_cannot_be_updated(tmp_path):
    template = template_repository(tmp_path / "template")
    shutil.rmtree(template / ".git")
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path / "out"), str(template)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("not a git checkout") == 1 and "cannot bring it up to date later" in result.stdout
    assert not (tmp_path / "out" / "solar-cell-inspection" / ".cruft.json").exists()


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
