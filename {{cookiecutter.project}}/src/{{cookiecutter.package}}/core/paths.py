"""Where the project lives, so relative paths mean the same in a notebook and a shell; and writing a file whole."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/<package>


def project_root() -> Path:
    """The folder holding pyproject.toml (editable install), else the working directory."""
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "code").is_dir():
        return candidate
    return Path.cwd()


def resolve(path: str | Path) -> Path:
    """Absolute paths stay; relative ones are taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (project_root() / path).resolve()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader (or a killed writer) never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # two writers never share one
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
