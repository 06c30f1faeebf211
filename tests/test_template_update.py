"""A baked project keeps up with its template: the template as a git repository at commit A, a bake, the user's
committed work, template changes committed as B, then the baked project's own ``make template-update``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from cookiecutter.main import cookiecutter

from .helpers import commit_all, git, template_repository

PROJECT = "{{cookiecutter.project}}"  # the template's project folder, as named in the template
ACQUIRE = "code/01_data_acquisition_and_understanding/01_acquire_data.ipynb"
COMPARE = "code/02_modeling/04_compare_runs.ipynb"
PACKAGE = "sync_probe"
USER_README = "Our line of solar cells comes from the Hamburg plant."


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """The template at commit A and a project baked from it (digits: the cheapest sample), committed."""
    template = template_repository(tmp_path / "template")
    out = tmp_path / "bakes"
    project = Path(
        cookiecutter(
            str(template),
            no_input=True,
            output_dir=str(out),
            extra_context={"project": "sync-probe", "dataset": "digits"},
        )
    )
    git(project, "init", "-q")
    commit_all(project, "bake")
    return template, project


def make(project: Path, target: str) -> subprocess.CompletedProcess:
    """The project's own make target, on this environment (a setup stamp newer than pyproject.toml: nothing is
    installed). Make exits 2 when the command fails, whatever its own code."""
    stamp = project.parent / "installed"
    stamp.touch()
    return subprocess.run(
        ["make", "-s", target, f"VENV={sys.prefix}", f"STAMP={stamp}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def edit_notebook(path: Path, edit) -> None:
    """Edit a notebook's JSON in place, in the layout it is stored in."""
    nb = json.loads(path.read_text())
    edit(nb["cells"])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def source(cell: dict) -> str:
    return "".join(cell["source"])


def set_source(cell: dict, text: str) -> None:
    cell["source"] = text


def parameters(cells: list[dict]) -> dict:
    return next(cell for cell in cells if "parameters" in cell["metadata"].get("tags", []))


def replace_line(cell: dict, start: str, line: str) -> None:
    lines = source(cell).split("\n")
    set_source(cell, "\n".join(line if old.startswith(start) else old for old in lines))


def user_work(project: Path) -> None:
    """A parameter default changed (notebook and config alike), a code cell added, a new module, a README
    paragraph, a template file deleted; saved as JupyterLab saves notebooks (nbformat's layout)."""
    nb = nbformat.read(project / ACQUIRE, as_version=4)
    replace_line(nb.cells[2], "VAL_FRACTION =", "VAL_FRACTION = 0.2  # share of the images for validation")
    nbformat.write(nb, project / ACQUIRE)
    config = project / "src" / PACKAGE / "core" / "config.py"
    config.write_text(config.read_text().replace("val_fraction: float = 0.15", "val_fraction: float = 0.2"))
    nb = nbformat.read(project / COMPARE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('print("our own check")'))
    del nb.cells[-1]["id"]
    nbformat.write(nb, project / COMPARE)
    (project / "src" / PACKAGE / "core" / "plant.py").write_text('"""Our plant\'s codes."""\n\nPLANT = "HH"\n')
    with (project / "README.md").open("a") as readme:
        readme.write(f"\n{USER_README}\n")
    (project / "docs" / "exit_report.md").unlink()
    commit_all(project, "our work")


def template_changes(template: Path) -> str:
    """A new make target, a changed code cell in the notebook the user edited, a dependency bump, a file
    removed, a file added, the user-deleted file changed, a CHANGELOG line; committed as B."""
    root = template / PROJECT
    makefile = root / "Makefile"
    makefile.write_text(makefile.read_text() + "\nhello: ## say hello\n\t@echo hello from the template\n")
    edit_notebook(root / ACQUIRE, lambda cells: set_source(cells[-1], source(cells[-1]) + '\nprint("template B")'))
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pillow>=10"', '"pillow>=11"'))
    (root / "docs" / "model_report.md").unlink()
    (root / "docs" / "runbook.md").write_text("# Runbook\n")
    (root / "docs" / "exit_report.md").write_text("# Exit report\n\nRewritten by the template.\n")
    changelog = root / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## Unreleased\n", "## Unreleased\n- Added: `make hello`.\n"))
    return commit_all(template, "B")


def run_notebook(project: Path, notebook: str, **parameters) -> None:
    args = [f"-p {name} {value}" for name, value in {"RUN_DIR": "runs/sync", **parameters}.items()]
    command = [
        sys.executable,
        "-m",
        "papermill",
        "-k",
        "python3",
        notebook,
        str(project.parent / Path(notebook).name),
    ]
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    result = subprocess.run(command + " ".join(args).split(), cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_update_keeps_the_users_work_and_brings_every_template_change(linked):
    template, project = linked
    user_work(project)
    new = template_changes(template)
    check = make(project, "template-check")
    assert check.returncode != 0 and new[:7] in check.stdout, check.stdout + check.stderr

    result = make(project, "template-update")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "- Added: `make hello`." in result.stdout
    assert "Next steps" not in result.stdout  # the hooks ran for the re-bakes, and knew them for re-bakes
    assert "hello: ## say hello" in (project / "Makefile").read_text()
    assert '"pillow>=11"' in (project / "pyproject.toml").read_text()
    assert not (project / "docs" / "model_report.md").exists() and "docs/model_report.md" in result.stdout
    assert (project / "docs" / "runbook.md").is_file()
    assert not (project / "docs" / "exit_report.md").exists()  # deleted by the user: stays deleted
    assert (project / "src" / PACKAGE / "core" / "plant.py").is_file()
    assert USER_README in (project / "README.md").read_text()
    acquire = nbformat.read(project / ACQUIRE, as_version=4)
    compare = nbformat.read(project / COMPARE, as_version=4)
    for notebook in (acquire, compare):
        nbformat.validate(notebook)
    assert "VAL_FRACTION = 0.2  #" in acquire.cells[2].source and 'print("template B")' in acquire.cells[-1].source
    assert compare.cells[-1].source == 'print("our own check")'
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new
    check = make(project, "template-check")
    assert check.returncode == 0 and "Up to date" in check.stdout and new[:7] in check.stdout

    run_notebook(project, ACQUIRE, MAX_PER_CLASS=12)
    run_notebook(project, COMPARE)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_config.py"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout[-3000:]


def test_a_line_changed_on_both_sides_is_a_named_conflict_holding_both_versions(linked):
    template, project = linked
    nb = nbformat.read(project / ACQUIRE, as_version=4)
    replace_line(nb.cells[2], "VAL_FRACTION =", "VAL_FRACTION = 0.2  # ours")
    nbformat.write(nb, project / ACQUIRE)
    with (project / "README.md").open("a") as readme:
        readme.write(f"\n{USER_README}\n")
    commit_all(project, "our work")
    edit_notebook(
        template / PROJECT / ACQUIRE,
        lambda cells: replace_line(parameters(cells), "VAL_FRACTION =", "VAL_FRACTION = 0.25  # the template's"),
    )
    pyproject = template / PROJECT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pillow>=10"', '"pillow>=11"'))
    commit_all(template, "B")

    result = make(project, "template-update")
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"{ACQUIRE}: cell 3 (code: " in result.stdout
    merged = json.loads((project / ACQUIRE).read_text())  # still valid JSON, and a valid notebook
    nbformat.validate(nbformat.from_dict(merged))
    text = source(parameters(merged["cells"]))
    assert "<<<<<<< yours\nVAL_FRACTION = 0.2  # ours\n=======\nVAL_FRACTION = 0.25  # the template's" in text
    assert '"pillow>=11"' in (project / "pyproject.toml").read_text()
    assert USER_README in (project / "README.md").read_text()


def test_update_on_a_dirty_tree_is_refused_before_anything_changes(linked):
    template, project = linked
    template_changes(template)
    (project / "README.md").write_text("half-written\n")
    before = git(project, "status", "--porcelain"), (project / ".cruft.json").read_text()
    result = make(project, "template-update")
    assert result.returncode != 0 and "uncommitted changes" in result.stderr and "README.md" in result.stderr
    assert (git(project, "status", "--porcelain"), (project / ".cruft.json").read_text()) == before
    assert "hello:" not in (project / "Makefile").read_text()
