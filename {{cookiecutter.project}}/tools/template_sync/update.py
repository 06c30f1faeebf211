"""``template-update``: bring the template's changes since the bake into the project, keeping the user's work.

Cruft bakes the template at the project's commit and at the newest one, with the recorded answers. Their
difference reaches the project three ways: notebooks are merged cell by cell (``notebooks``); files the template
deleted go only when the user never changed them; everything else is cruft's patch, applied by ``git apply -3``
(a three-way merge: conflict markers, never ``.rej`` files). Files the user deleted stay deleted.
"""

import filecmp
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from cruft._commands.utils import diff

from . import changelog, notebooks, renders
from .state import STATE_FILE, SyncError, git, latest_commit, load_state, save_state, uncommitted

# git apply -3 labels the sides ours and theirs; say whose each is, as in the notebooks.
GIT_LABELS = {"<<<<<<< ours": "<<<<<<< yours", ">>>>>>> theirs": ">>>>>>> template"}


@dataclass
class Report:
    old_commit: str
    new_commit: str
    template: str
    changed: list[str] = field(default_factory=list)  # the template's change applied cleanly
    notebooks: list[str] = field(default_factory=list)  # merged cell by cell with the user's edits
    deleted: list[str] = field(default_factory=list)  # deleted by the template, never changed by the user
    kept: list[str] = field(default_factory=list)  # deleted by the template, but changed by the user
    conflicts: list[str] = field(default_factory=list)  # "path" or "path: cell n (...)"
    changelog: list[str] = field(default_factory=list)


def update(project: Path, checkout: str | None = None) -> Report:
    """Apply the template's changes; refuse, before changing anything, when the work tree is not clean."""
    project = project.resolve()
    state = load_state(project)
    dirty = uncommitted(project)
    if dirty:
        raise SyncError(
            "uncommitted changes: commit or stash them first, so the update can be reviewed and undone: "
            + ", ".join(line[3:] for line in dirty)
        )
    report = Report(state["commit"], latest_commit(state["template"], checkout), state["template"])
    if report.new_commit == report.old_commit:
        return report
    with tempfile.TemporaryDirectory() as tmp:
        with renders.cloned_template(state, Path(tmp) / "repo", checkout) as repo:
            report.new_commit = repo.head.object.hexsha
            old, new, context = renders.bake_both(repo, state, project, report.new_commit, Path(tmp))
        apply_changes(project, old, new, report)
    state.update(commit=report.new_commit, checkout=checkout, context=context)
    save_state(project, state)
    git(project, "add", "--", STATE_FILE)
    return report


def apply_changes(project: Path, old: Path, new: Path, report: Report) -> None:
    report.changelog = changelog.new_entries(old, new)
    removed = sorted(files(old) - files(new))
    unchanged = [path for path in removed if filecmp.cmp(old / path, project / path, shallow=False)]
    report.kept = [path for path in removed if path not in unchanged]
    merges = {path: (read(old / path), read(new / path)) for path in changed_notebooks(old, new)}
    for path in removed + list(merges):  # not for the text patch: settled here
        (old / path).unlink()
        (new / path).unlink(missing_ok=True)
    apply_patch(project, old, new, report)
    for path, (base, template) in merges.items():
        merge_notebook(project, path, base, template, report)
    if unchanged:
        git(project, "rm", "-q", "--", *unchanged)
        report.deleted = unchanged


def files(tree: Path) -> set[str]:
    return {path.relative_to(tree).as_posix() for path in tree.rglob("*") if path.is_file()}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def changed_notebooks(old: Path, new: Path) -> list[str]:
    both = files(old) & files(new)
    return sorted(p for p in both if p.endswith(".ipynb") and not filecmp.cmp(old / p, new / p, shallow=False))


def apply_patch(project: Path, old: Path, new: Path, report: Report) -> None:
    """Cruft's patch from the old bake to the new, applied with a three-way merge.

    The old bake's files are written into the project's object store first, so git always finds the merge base
    (cruft's own update needs the bake committed unchanged for that; without it, ``.rej`` files).
    """
    patch = diff.get_diff(old, new)
    if not patch.strip():
        return
    paths = "\n".join(str(path) for path in old.rglob("*") if path.is_file())
    git(project, "hash-object", "-w", "--no-filters", "--stdin-paths", stdin=paths + "\n")
    prefix = git(project, "rev-parse", "--show-prefix").strip()  # the project may sit inside a larger repository
    command = ["git", "apply", "-3", *(["--directory", prefix] if prefix else [])]
    applied = subprocess.run(command, cwd=project, input=patch, capture_output=True, text=True)
    conflicts = git(project, "diff", "--name-only", "--relative", "--diff-filter=U").splitlines()
    if applied.returncode != 0 and not conflicts:
        raise SyncError(f"git apply refused the template's changes, nothing was changed: {applied.stderr.strip()}")
    for path in conflicts:
        relabel_text_conflict(project / path)
    changed = sorted(path for path in files(old) | files(new) if differs(old / path, new / path))
    report.changed = [path for path in changed if path not in conflicts]
    report.conflicts += conflicts


def differs(a: Path, b: Path) -> bool:
    return not (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False))


def relabel_text_conflict(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(GIT_LABELS.get(line, line) for line in lines), encoding="utf-8")


def merge_notebook(project: Path, path: str, base: str, template: str, report: Report) -> None:
    """The user's notebook untouched since the bake becomes the template's; otherwise nbdime merges the two."""
    target = project / path
    yours = read(target)
    if yours == base:
        target.write_text(template, encoding="utf-8")
        git(project, "add", "--", path)
        report.changed.append(path)
        return
    try:
        merged = notebooks.merge(base, yours, template)
    except (ValueError, nbformat.ValidationError) as error:  # not JSON, or not a notebook: left as it is
        report.conflicts.append(f"{path}: not a notebook nbdime can read ({error}); the template's change is not in")
        return
    target.write_text(merged.text, encoding="utf-8")
    if merged.conflicts:  # left unstaged until the user resolves it
        report.conflicts += [f"{path}: {where}" for where in merged.conflicts]
    else:
        git(project, "add", "--", path)
        report.notebooks.append(path)
