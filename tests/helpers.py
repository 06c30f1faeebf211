"""Bake the template into temporary folders with cookiecutter's real API, and install a bake for a while."""

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
