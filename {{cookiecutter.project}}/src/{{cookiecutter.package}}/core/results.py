"""What each step hands on: one dataclass per step, saved by the run folder as ``results/<STEP>.json``.

These are the schemas the stages share; a stage reads another stage's results from here, never from its
``steps`` module. ``Metrics`` is also the run's headline, ``metrics.json``.
"""

from dataclasses import dataclass, field


@dataclass
class AcquisitionResults:
    """What 01_acquire_data found: the data report and every later step read this."""

    STEP = "01_acquire_data"
    source: str
    sample: str  # the bundled sample the images came from, "" for the user's own images
    n_files: int
    n_excluded: int
    excluded: dict[str, int]  # reason -> count
    classes: list[str]
    split_counts: dict[str, int]
    duplicate_groups: int
    n_reviewed: int
    labels_review: str
    split_rule: str
    duplicate_rule: str
    conflicting_groups: int = 0  # duplicate groups whose images carry different labels (CONFLICTING_LABELS)
    groups: dict[str, int] = field(default_factory=dict)  # subjects, groups, cut_groups, cut_images (see groups)
    group_rule: str = ""  # where the groups came from, in words
    unused_columns: dict[str, str] = field(default_factory=dict)  # a manifest's columns not read -> a note on each


@dataclass
class ReviewResults:
    """What 02_explore_and_review found."""

    STEP = "02_explore_and_review"
    class_counts: dict[str, int]
    median_size: list[int]
    duplicate_groups: int
    n_reviewed_by_probe: int
    likeliest_label_errors: list[str] = field(default_factory=list)
    report: str = ""


@dataclass
class ProbeResults:
    STEP = "01_linear_probe"
    pooling: str
    pooling_candidates: dict[str, dict[str, float]]
    best_c: float
    val_accuracy: float
    fold_gap: float
    curve: list[dict[str, float]]


@dataclass
class FineTuneResults:
    STEP = "02_fine_tune"
    best_epoch: int
    val_accuracy: float  # with the views and resolution chosen on validation, as the model predicts
    val_accuracy_without_tta: float  # one view at the training resolution
    flips: str
    augment_strength: float
    epochs: list[dict[str, float]]  # one row per epoch: train/validation loss and accuracy
    test_views: str = "none"  # the views chosen on validation (averaged at prediction)
    resolution: int = 0  # the prediction resolution chosen on validation


@dataclass
class Metrics:
    """The chosen model on the test split (used once), and how every candidate compared: ``metrics.json``."""

    STEP = "03_evaluate"
    test_accuracy: float
    test_auc: float
    test_accuracy_ci: list[float]  # 95% stratified bootstrap interval
    test_auc_ci: list[float]
    val_accuracy: float
    n_train: int
    n_val: int
    n_test: int
    classes: list[str]
    backbone: str
    resolution: int
    resize: str
    classifier: str
    model_dir: str
    candidates: dict[str, float]  # name -> validation accuracy
    candidates_on_test: dict[str, dict[str, float]]
    probe_pooling: dict[str, object]
    per_class: dict[str, dict[str, object]]  # precision, recall (each with its interval), f1, support
    confusion_matrix: list[list[int]]
    run_dir: str
    bootstrap: dict[str, object]  # how the intervals were drawn: resamples, level
    calibration: dict[str, float]  # the temperature (fitted on validation), log-loss and ECE before and after
    decision: dict | None  # the threshold chosen on validation for TARGET_CLASS, with its test recall and precision
    val_accuracy_ci: list[float] = field(default_factory=list)  # the chosen model's, by the same bootstrap as test's
    gap: dict = field(default_factory=dict)  # validation against test, judged after the choice (see core.gap)


@dataclass
class ComparisonResults:
    STEP = "04_compare_runs"
    earlier_runs: list[dict]  # the newest runs of the project in the tracking store, this one included
    sweeps: dict[str, list[dict]]  # each sweep of this run: its trials


@dataclass
class ExportResults:
    STEP = "01_export"
    model_dir: str
    onnx_gap: float
    files: list[str]
    registered: dict  # name, version and alias in the model registry
    int8: dict | None = None  # kept, val_accuracy_fp32, val_accuracy_int8, calibration_images, reason; None: INT8=False


@dataclass
class ScoringResults:
    STEP = "02_batch_score"
    n_scored: int
    accuracy: float  # of the exported model on the test split: must equal the evaluated model's


@dataclass
class ServiceResults:
    STEP = "03_web_service"
    health: dict
    answer: dict  # the whole answer: model, predictions, request id
    prediction: dict  # the one image's label and class probabilities
    true_label: str
    image: str
