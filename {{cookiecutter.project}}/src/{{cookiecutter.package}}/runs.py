"""The run folder: the only channel between notebooks (no hidden state)."""

import json
from pathlib import Path

import pandas as pd

from .manifest import read_csv
from .paths import resolve

MANIFEST = "manifest.csv"


def run_folder(run_dir: str | Path) -> Path:
    path = resolve(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(run_dir: Path, notebook: str, values: dict) -> Path:
    """Write a notebook's key results to ``results/<notebook>.json`` (tests assert on them)."""
    path = run_dir / "results" / f"{notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2, default=str))
    return path


def results(run_dir: Path, notebook: str) -> dict:
    """What ``record`` wrote for ``notebook``, or {} if it has not run in this run folder."""
    path = run_dir / "results" / f"{notebook}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def bundled_sample(run_dir: Path) -> str:
    """The bundled sample this run's images came from, or "" for the user's own images."""
    return results(run_dir, "01_acquire_data").get("sample", "")


def read_manifest(run_dir: Path, usable_only: bool = True) -> pd.DataFrame:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run 01_acquire_data first with the same RUN_DIR.")
    manifest = read_csv(path)
    return manifest[manifest.status == "ok"].reset_index(drop=True) if usable_only else manifest
