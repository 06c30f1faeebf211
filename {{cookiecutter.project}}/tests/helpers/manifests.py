"""Stage 1 on a source, the way 01_acquire_data runs it: the manifest a test reads its splits and groups from."""

import tempfile
from pathlib import Path

from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.run_folder import RunFolder


def build_manifest(location: Path, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, **kw):
    """01_acquire_data's ``acquire`` step on a folder or CSV source, in a fresh run folder; the whole manifest."""
    return acquired_run(location, val_fraction, test_fraction, seed, **kw).read_manifest(usable_only=False)


def acquired_run(location: Path, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, **kw):
    """The run folder of ``build_manifest``: its manifest, and its results for the data report."""
    run = RunFolder.open(tempfile.mkdtemp(prefix="run-"))
    cfg = DataConfig(
        data_dir=str(location),
        labels_review=str(run.root / "no_labels_review.csv"),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        workers=1,
        **kw,
    )
    acquire(cfg, run)
    return run
