"""template_sync (make template-check / template-update) on a tiny template made here: notebooks merged cell by
cell, files deleted on either side, conflicts marked and named, a dirty tree refused before anything changes."""

import json
import os
import subprocess
from pathlib import Path

import cruft
import nbformat
import pytest
from template_sync import changelog, notebooks
from template_sync.__main__ import main
from template_sync.state import SyncError, load_state
from template_sync.update import update

# Spelled in pieces: this file is itself baked from a template, whose tests look for leftover template syntax.
PROJECT_FOLDER = "{" * 2 + " cookiecutter" + ".project " + "}" * 2
PROMPTS_FILE = "cookiecutter" + ".json"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def notebook(*sources: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for cell in nb.cells:
        del cell["id"]
    return nbformat.writes(nb) + "\n"


def write_files(root: Path, files: dict[str, str | None]) -> None:
    """Write each file; None deletes it."""
    for name, text in files.items():
        path = root / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


BASE = {
    "Makefile": "all:\n\techo one\n",
    "README.md": "# Demo\n\nIntro.\n",
    "CHANGELOG.md": "# Changelog\n\n- Added: the first release.\n",
    "gone.txt": "the template drops this\n",
    "edited_then_gone.txt": "the template drops this, the user edits it\n",
    "mine_to_delete.txt": "the user deletes this\n",
    "nb.ipynb": notebook("A = 1  # a parameter", "print(A)"),
}


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A template at its first commit, and a project baked from it by cruft, committed, with the user's work."""
    template = tmp_path / "template"
    (template / PROJECT_FOLDER).mkdir(parents=True)
    (template / PROMPTS_FILE).write_text(json.dumps({"project": "demo"}))
    git(template, "init", "-q")
    commit(template, {f"{PROJECT_FOLDER}/{name}": text for name, text in BASE.items()}, "A")
    project = cruft.create(str(template), output_dir=tmp_path / "out")
    git(project, "init", "-q")
    commit(project, {}, "bake")
    user = {
        "README.md": "# Demo\n\nIntro.\n\nMy own paragraph.\n",
        "edited_then_gone.txt": "my edit\n",
        "mine_to_delete.txt": None,
        "nb.ipynb": notebook("A = 2  # a parameter", "print(A)", "print('my cell')"),
        "mine.py": "VALUE = 1\n",
    }
    commit(project, user, "my work")
    return template, project


def template_change(template: Path, files: dict[str, str | None]) -> str:
    return commit(template, {f"{PROJECT_FOLDER}/{name}": text for name, text in files.items()}, "B")


def test_update_keeps_the_users_work_and_brings_every_template_change(linked, capsys):
    template, project = linked
    new = template_change(
        template,
        {
            "Makefile": "all:\n\techo one\n\nhello:\n\techo hello\n",
            "CHANGELOG.md": "# Changelog\n\n- Added: `make hello`.\n- Added: the first release.\n",
            "gone.txt": None,
            "edited_then_gone.txt": None,
            "mine_to_delete.txt": "changed upstream\n",
            "added.txt": "new in the template\n",
            "nb.ipynb": notebook("A = 1  # a parameter", "print(A, 'from the template')"),
        },
    )
    assert main(["check", "--project", str(project)]) == 1
    assert main(["update", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert "- Added: `make hello`." in out and "the first release" not in out.split("CHANGELOG.md")[-1]
    assert "hello:" in (project / "Makefile").read_text()
    assert (project / "added.txt").read_text() == "new in the template\n"
    assert not (project / "gone.txt").exists() and "gone.txt" in out
    assert (project / "edited_then_gone.txt").read_text() == "my edit\n" and "Kept" in out
    assert not (project / "mine_to_delete.txt").exists()
    assert "My own paragraph." in (project / "README.md").read_text() and (project / "mine.py").is_file()
    merged = nbformat.read(project / "nb.ipynb", as_version=4)
    nbformat.validate(merged)
    assert [cell.source for cell in merged.cells] == [
        "A = 2  # a parameter",
        "print(A, 'from the template')",
        "print('my cell')",
    ]
    assert load_state(project)["commit"] == new
    assert main(["check", "--project", str(project)]) == 0
    assert "Up to date" in capsys.readouterr().out


def test_a_cell_changed_on_both_sides_keeps_both_versions_and_is_named(linked, capsys):
    template, project = linked
    template_change(
        template, {"nb.ipynb": notebook("A = 3  # a parameter", "print(A)"), "README.md": "# Demo\n\nNew intro.\n"}
    )
    assert main(["update", "--project", str(project)]) == 1
    out = capsys.readouterr().out
    assert "nb.ipynb: cell 1 (code: A = 2  # a parameter)" in out
    merged = nbformat.read(project / "nb.ipynb", as_version=4)
    nbformat.validate(merged)
    assert merged.cells[0].source.splitlines() == [
        "<<<<<<< yours",
        "A = 2  # a parameter",
        "=======",
        "A = 3  # a parameter",
        ">>>>>>> template",
    ]
    assert merged.cells[2].source == "print('my cell')"
    readme = (project / "README.md").read_text()
    assert "<<<<<<< yours" in readme and "My own paragraph." in readme and "New intro." in readme
    assert "README.md" in out


def test_uncommitted_changes_are_refused_before_anything_changes(linked):
    template, project = linked
    template_change(template, {"Makefile": "all:\n\techo two\n"})
    (project / "README.md").write_text("unsaved\n")
    (project / "scratch.py").write_text("x = 1\n")
    before = (project / ".cruft.json").read_text(), git(project, "status", "--porcelain")
    with pytest.raises(SyncError, match=r"uncommitted changes.*README\.md.*scratch\.py"):
        update(project)
    assert ((project / ".cruft.json").read_text(), git(project, "status", "--porcelain")) == before
    assert (project / "Makefile").read_text() == BASE["Makefile"]


def test_changelog_entries_between_two_bakes(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_files(old, {"CHANGELOG.md": "# Changelog\n\n- Fixed: a.\n  More on a.\n"})
    write_files(new, {"CHANGELOG.md": "# Changelog\n\n- Added: b,\n  over two lines.\n- Fixed: a.\n  More on a.\n"})
    assert changelog.new_entries(old, new) == ["- Added: b,\n  over two lines."]


def test_notebooks_changed_in_different_cells_merge_without_conflict():
    base = notebook("A = 1", "B = 1")
    merged = notebooks.merge(base, notebook("A = 2", "B = 1"), notebook("A = 1", "B = 2"))
    assert merged.conflicts == []
    assert [cell.source for cell in nbformat.reads(merged.text, as_version=4).cells] == ["A = 2", "B = 2"]


def test_a_notebook_broken_by_hand_is_listed_and_left_as_it_is(linked, capsys):
    template, project = linked
    commit(project, {"nb.ipynb": "{ not json"}, "broken")
    template_change(template, {"nb.ipynb": notebook("A = 1  # a parameter", "print(A, 'new')")})
    assert main(["update", "--project", str(project)]) == 1
    assert "nb.ipynb: not a notebook nbdime can read" in capsys.readouterr().out
    assert (project / "nb.ipynb").read_text() == "{ not json"
