"""The run folder: the only channel between notebooks (no hidden state), and the one place its layout is spelled.

Every step reads and writes through a ``RunFolder``; no other module or notebook names a run file. Each step's
results are a dataclass with a ``STEP`` name, saved as ``results/<STEP>.json`` and read back typed.
"""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TypeVar

import pandas as pd

from .paths import resolve, write_atomically
from .results import Metrics

Results = TypeVar("Results")

# The trained candidates, one folder each under models/; 03_evaluate chooses among them.
LINEAR_PROBE = "linear_probe"
FINE_TUNED = "fine_tuned"
ENSEMBLE = "ensemble"  # the two averaged, made by 03_evaluate before it chooses

# Every figure a run draws, by the notebook that draws it (figures/<name>.png).
FIGURES = {
    "02_explore_and_review": ("class_counts", "sample_grid", "image_sizes", "duplicate_groups", "label_errors"),
    "01_linear_probe": ("validation_curve",),
    "02_fine_tune": ("training_curves",),
    "03_evaluate": ("roc_curve", "precision_recall", "confusion_matrix", "reliability", "largest_losses", "heat_maps"),
}


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @classmethod
    def open(cls, run_dir: "str | Path | RunFolder") -> "RunFolder":
        """The run folder at ``run_dir`` (relative paths start at the project root), created if missing."""
        if isinstance(run_dir, RunFolder):
            return run_dir
        root = resolve(run_dir)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    # acquisition
    @property
    def scan(self) -> Path:
        """Every file found, checked, before the label review (01_acquire_data)."""
        return self.root / "scan.csv"

    @property
    def manifest(self) -> Path:
        """Every file with its status, label, duplicate group and split: what later steps read."""
        return self.root / "manifest.csv"

    @property
    def label_errors(self) -> Path:
        return self.root / "label_errors.csv"

    @property
    def data_report(self) -> Path:
        return self.root / "docs" / "data_report.md"

    @property
    def model_report(self) -> Path:
        return self.root / "docs" / "model_report.md"

    @property
    def exit_report(self) -> Path:
        return self.root / "docs" / "exit_report.md"

    # modeling
    @property
    def features(self) -> Path:
        """The probe's pooled features of every image, with labels and splits."""
        return self.root / "features.npz"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        """A trained candidate's folder (``LINEAR_PROBE``, ``FINE_TUNED``, ``ENSEMBLE``)."""
        return self.models / name

    @property
    def test_predictions(self) -> Path:
        """The chosen model's calibrated probabilities for every test image (03_evaluate)."""
        return self.root / "test_predictions.csv"

    @property
    def sweeps(self) -> Path:
        """One folder per sweep (``python -m <package> sweep``): trials, trials.csv, parameters.png, sweep.json."""
        return self.root / "sweeps"

    def sweep(self, name: str) -> Path:
        return self.sweeps / name

    @property
    def metrics(self) -> Path:
        """The chosen model's evaluation (03_evaluate): the run's headline."""
        return self.root / "metrics.json"

    # deployment
    @property
    def exported_model(self) -> Path:
        return self.root / "model"

    @property
    def test_images(self) -> Path:
        return self.root / "test_images.csv"

    @property
    def scores(self) -> Path:
        return self.root / "scores.csv"

    # every step
    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str) -> Path:
        """One of the ``FIGURES``; any other name is a mistake, caught here rather than as a missing file later."""
        known = [figure for names in FIGURES.values() for figure in names]
        if name not in known:
            raise ValueError(f"Unknown figure {name!r}: a run draws {', '.join(known)}.")
        return self.figures / f"{name}.png"

    @property
    def notebooks(self) -> Path:
        """Executed copies of the notebooks (``pipeline``)."""
        return self.root / "notebooks"

    @property
    def work(self) -> Path:
        """Scratch files of a step (e.g. the featurizer's ONNX file)."""
        return self.root

    @property
    def tracking(self) -> Path:
        """Which MLflow run this run folder logs into (``core.tracking``)."""
        return self.root / "tracking.json"

    # the pipeline's bookkeeping
    @property
    def stages(self) -> Path:
        """One record per stage that completed here: its key, what it read and wrote, how long it took."""
        return self.root / "stages"

    def stage_record(self, name: str) -> Path:
        return self.stages / f"{name}.json"

    @property
    def digest_cache(self) -> Path:
        """Content hashes of the files the stages read, by size, modification time and inode."""
        return self.stages / "file_digests.json"

    @property
    def pipeline_settings(self) -> Path:
        """The profile, data source and parameters of the last ``pipeline`` here (what ``status`` compares to)."""
        return self.stages / "pipeline.json"

    @property
    def lock(self) -> Path:
        """Held while a ``pipeline`` works here; beside it, who holds it."""
        return self.root / ".pipeline.lock"

    @property
    def lock_owner(self) -> Path:
        return self.root / ".pipeline.owner.json"

    @property
    def graph(self) -> Path:
        """``status --graph``: the stages and the run files between them (``.png`` and Mermaid ``.mmd``)."""
        return self.stages / "graph"

    def results_file(self, step: str) -> Path:
        return self.root / "results" / f"{step}.json"

    def save(self, results: object) -> Path:
        """Write a step's results (a dataclass with a ``STEP`` name) to ``results/<STEP>.json``."""
        path = self.results_file(results.STEP)
        write_atomically(path, json.dumps(asdict(results), indent=2, default=str))
        return path

    def load(self, kind: type[Results]) -> Results:
        """A step's results, as the dataclass ``kind``; names the step to run when it has not run here."""
        path = self.results_file(kind.STEP)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run {kind.STEP} first with the same RUN_DIR.")
        values = json.loads(path.read_text())
        return kind(**{f.name: values[f.name] for f in fields(kind) if f.name in values})

    def has(self, kind: type) -> bool:
        return self.results_file(kind.STEP).is_file()

    def read_scan(self) -> pd.DataFrame:
        return _read_table(self.scan)

    def read_manifest(self, usable_only: bool = True) -> pd.DataFrame:
        if not self.manifest.is_file():
            raise FileNotFoundError(f"{self.manifest} does not exist: run 01_acquire_data first with the same RUN_DIR.")
        manifest = _read_table(self.manifest)
        return manifest[manifest.status == "ok"].reset_index(drop=True) if usable_only else manifest

    def write_metrics(self, metrics: Metrics) -> Path:
        """The run's headline, ``metrics.json`` (03_evaluate); also saved as that step's results."""
        self.save(metrics)
        write_atomically(self.metrics, json.dumps(asdict(metrics), indent=2))
        return self.metrics

    def read_metrics(self) -> Metrics:
        """The one reader of ``metrics.json``."""
        if not self.metrics.is_file():
            raise FileNotFoundError(f"{self.metrics} does not exist: run 03_evaluate first with the same RUN_DIR.")
        values = json.loads(self.metrics.read_text())
        return Metrics(**{f.name: values[f.name] for f in fields(Metrics) if f.name in values})

    def __str__(self) -> str:
        return str(self.root)

    def __fspath__(self) -> str:
        return str(self.root)


# Read as text: a hex digest can look like a number, and a group such as 007 is a name.
TEXT_COLUMNS = ("path", "label", "split", "dup_group", "sha256", "dhash", "origin", "review", "reason", "group")


def _read_table(path: Path) -> pd.DataFrame:
    """A scan or manifest CSV, hashes and names kept as text."""
    return pd.read_csv(path, keep_default_na=False, dtype=dict.fromkeys((*TEXT_COLUMNS, "split_group"), str))
