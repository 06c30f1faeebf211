"""Drop what the chosen options do not need, link the bake to its template commit, then print the next steps.

Cruft re-bakes the template to update a project (``make template-update``, ``cruft update``, ``cruft diff``); it
puts ``_commit`` in the context. Such a re-bake is not a first bake: it drops the same files, but it neither
writes ``.cruft.json`` (cruft keeps it) nor prints anything.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from cookiecutter.config import get_user_config
from cookiecutter.repository import expand_abbreviations, is_repo_url

# Cookiecutter fills these literals in; everything below is plain Python.
PACKAGE = "{{ cookiecutter.package }}"
DATASET = "{{ cookiecutter.dataset }}"
LICENSE = "{{ cookiecutter.license }}"
CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")  # JSON escapes its quotes: the raw string holds it whole

BUNDLED_SAMPLES = ("elpv", "digits")
# Where this machine's copy of the template lay: not an answer, and meaningless on another machine.
MACHINE_KEYS = ("_output_dir", "_repo_dir", "_checkout")


def unneeded_files(root: Path) -> list[Path]:
    """Files that only matter for options the user did not choose."""
    samples = root / "src" / PACKAGE / "acquisition" / "samples"
    paths = [samples / f"{name}.py" for name in BUNDLED_SAMPLES if name != DATASET]
    if LICENSE == "Proprietary":
        paths.append(root / "LICENSE")
    return paths


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def git(folder: Path, *args: str) -> str | None:
    """A git command's output in ``folder``; None when git fails (not a checkout, no commit yet, no git)."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def template_folder(repo_dir: str) -> Path | None:
    """The template's folder. A relative ``_repo_dir`` is relative to where cookiecutter started, which a hook
    (run in the new project) cannot see; cookiecutter runs hooks from inside the template folder (its process's
    folder: /proc on Linux), and the shell's PWD is where it started."""
    candidates = [Path(repo_dir)] if Path(repo_dir).is_absolute() else []
    proc_cwd = Path(f"/proc/{os.getppid()}/cwd")
    candidates += [proc_cwd.resolve()] if proc_cwd.exists() else []
    candidates += [Path(os.environ.get("PWD", ".")) / repo_dir]
    return next((path.resolve() for path in candidates if (path / "cookiecutter.json").is_file()), None)


def template_source(template: str, top: Path) -> str:
    """What cruft clones: the folder itself for a local template, else the clone's remote (cookiecutter cloned
    ``gh:owner/name`` or a URL into a cache folder that the next bake replaces)."""
    if not is_repo_url(expand_abbreviations(template, get_user_config()["abbreviations"])):
        return str(top)
    return git(top, "remote", "get-url", "origin") or template


def cruft_state(context: dict) -> tuple[dict | None, str]:
    """The ``.cruft.json`` of this bake and a note for the user, or None and why it cannot be linked."""
    repo_dir = template_folder(str(context.get("_repo_dir") or "."))
    top_text = git(repo_dir, "rev-parse", "--show-toplevel") if repo_dir else None
    commit = git(repo_dir, "rev-parse", "--verify", "HEAD") if top_text else None
    if not commit:
        return None, (
            f"Note: the template at {context.get('_template')} is not a git checkout with a commit, so this project "
            "records no template commit and `make template-update` cannot bring it up to date later. "
            "Bake from a git clone of the template to keep that option."
        )
    top = Path(top_text)
    source = template_source(str(context.get("_template")), top)
    answers = {key: value for key, value in context.items() if key not in MACHINE_KEYS}
    answers.update(_template=source, _commit=commit)
    directory = repo_dir.relative_to(top).as_posix()
    state = {
        "template": source,
        "commit": commit,
        "checkout": context.get("_checkout"),
        "context": {"cookiecutter": answers},
        "directory": None if directory == "." else directory,
    }
    dirty = git(top, "status", "--porcelain", "--", str(repo_dir))
    note = (
        f"Note: the template has uncommitted changes; they are in this bake but not in its commit {commit[:7]}, "
        "so `make template-update` will treat them as your own edits."
        if dirty
        else ""
    )
    return state, note


def link(root: Path, context: dict) -> str:
    """Write ``.cruft.json`` when the template is a git checkout; return what the user should know."""
    state, note = cruft_state(context)
    if state is not None:
        (root / ".cruft.json").write_text(json.dumps(state, ensure_ascii=False, indent=2) + "\n")
    return note


def next_steps(root: Path) -> str:
    data_hint = (
        "put your images in data/raw/<class>/ (one sub-folder per class)"
        if DATASET == "folder"
        else f"the bundled '{DATASET}' sample is written to data/raw/{DATASET}/ on first run"
    )
    return f"""
Created {root.name}/ ({data_hint}).

Next steps:
  cd {root.name}
  make setup      # virtual environment + the project, editable
  make pipeline   # every notebook in batch, results under runs/
  make lab        # read and run the notebooks in JupyterLab
  make serve      # REST service for the last trained model
  make test       # unit tests and the notebooks on tiny data
"""


if __name__ == "__main__":
    project_root = Path.cwd()
    remove(unneeded_files(project_root))
    if not CONTEXT.get("_commit"):  # a first bake, not cruft's re-bake of a linked project
        note = link(project_root, CONTEXT)
        print(next_steps(project_root) + (f"\n{note}\n" if note else ""))
