"""The project's link to its template (``.cruft.json``) and the git facts the commands rely on."""

import json
import re
import subprocess
from pathlib import Path

STATE_FILE = ".cruft.json"
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


class SyncError(Exception):
    """Why a command cannot go on, in one line that says what to do."""


def load_state(project: Path) -> dict:
    path = project / STATE_FILE
    if not path.is_file():
        raise SyncError(
            f"{STATE_FILE} is missing: this project records no template commit (it was baked from a folder "
            "that was not a git checkout). `cruft link <template>` links it to the template."
        )
    return json.loads(path.read_text())


def save_state(project: Path, state: dict) -> None:
    (project / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False, indent=2) + "\n")


def git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    """Run git and return its output; a failure becomes a SyncError carrying git's own message."""
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SyncError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def uncommitted(project: Path) -> list[str]:
    """`git status` lines of everything not committed (untracked files too: the template could add the same)."""
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=project, capture_output=True, text=True)
    if inside.stdout.strip() != "true":
        raise SyncError(
            f"{project} is not a git repository: commit the project first (git init && git add -A && "
            "git commit), so that the update merges into committed work you can review and undo."
        )
    status = git(project, "status", "--porcelain", "--untracked-files=all", "--", ".")
    return [line for line in status.splitlines() if line.strip()]


def short(commit: str | None) -> str:
    return (commit or "?")[:7]


def latest_commit(template: str, checkout: str | None) -> str:
    """The commit the template's branch (its default branch, or ``checkout``) points at, without cloning it."""
    if checkout and FULL_SHA.match(checkout):
        return checkout
    ref = checkout or "HEAD"
    try:
        listing = git(Path.cwd(), "ls-remote", template, ref)
    except SyncError as error:
        raise SyncError(f"cannot reach the template at {template}: {error}") from None
    refs = {name: sha for sha, _, name in (line.partition("\t") for line in listing.splitlines())}
    peeled = f"refs/tags/{ref}" + "^{}"  # an annotated tag's commit
    names = ["HEAD"] if ref == "HEAD" else [f"refs/heads/{ref}", peeled, f"refs/tags/{ref}"]
    for name in names:
        if name in refs:
            return refs[name]
    raise SyncError(f"the template at {template} has no branch or tag {ref!r}")
