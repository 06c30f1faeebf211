"""The smoke pipeline the notebook tests share: the command, with the settings every run of it uses."""

import hashlib
import sys
from pathlib import Path

import {{ cookiecutter.package }} as package

SMOKE = [
    *("--profile", "smoke"),
    *("-p", "VAL_FRACTION", "0.3"),  # a validation split big enough to judge on 24 images
    *("-p", "RESIZE", "crop"),  # not the default, so the tests see it travel (the tiny images are square)
    *("-p", "EPOCHS", "2"),  # two, so a run killed after the first has one to go on with
]


def pipeline_command(data: Path, out: Path, *extra: str) -> list[str]:
    """The smoke pipeline on ``data``; its feature cache beside ``data``, never the project's own, so a run of the
    tests starts from what this session computed (the same cache for every run on ``data``)."""
    where = ["--data-dir", str(data), "--out", str(out), "-p", "FEATURE_CACHE", str(feature_cache(data))]
    return [sys.executable, "-m", package.__name__, "pipeline", *where, *SMOKE, *extra]


def feature_cache(data: Path) -> Path:
    return data.parent / f"{data.name}-features"


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}
