"""Bake the template into temporary folders with cookiecutter's real API, install a bake for a while, and make
the template a git repository of its own (for template updates)."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cookiecutter.main import cookiecutter
from filelock import FileLock

TEMPLATE = Path(__file__).resolve().parents[1]


def bake(output_dir: Path, **context: str) -> Path:
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(output_dir)))


@contextmanager
def installed_editable(project: Path) -> Iterator[None]:
    """Install a baked project into this environment (its dependencies are already here), then remove it.

    The environment is cached between runs, so a leftover install would point at a deleted temporary folder.
    The baked folder's name is the distribution's name.
    """
    with one_pip_at_a_time():
        pip("install", "-q", "--no-deps", "--no-build-isolation", "-e", str(project))
    try:
        yield
    finally:
        with one_pip_at_a_time():
            pip("uninstall", "-q", "-y", project.name)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, timeout=600)


def one_pip_at_a_time() -> FileLock:
    """The tests run on several xdist workers; two pips writing one environment at once are not safe."""
    return FileLock(Path(sys.prefix) / ".template-tests-pip.lock")


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def template_repository(dest: Path) -> Path:
    """The template under test (its files as they are now, committed or not) as a git repository of its own at
    one commit, so a test can commit template changes to it."""
    listed = git(TEMPLATE, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        if (TEMPLATE / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / name, dest / name)
    git(dest, "init", "-q")
    commit_all(dest, "A")
    return dest


def is_git_checkout(folder: Path) -> bool:
    inside = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=folder, capture_output=True)
    return inside.returncode == 0
