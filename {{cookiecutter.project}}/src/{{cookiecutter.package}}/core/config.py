"""Typed, validated settings for each stage, and the run profiles.

Notebook ``parameters`` cells hold plain values; the next cell turns them into one
of these dataclasses, so a bad value fails early with the valid choices named. The
defaults here are the only defaults (the backbone and the data are the ones chosen at bake time):
a test holds every parameters cell to them.
It imports nothing outside ``core`` (the choices it checks against are in ``core.choices``), so every setting
is checked before any stage, torch or notebook is loaded.
"""

import difflib
import re
import types
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .choices import (
    BACKBONES,
    CLASS_WEIGHTS,
    CLASSIFIERS,
    CONFLICTING_LABELS,
    DEFAULT_RESIZE,
    FLIPS,
    HASH_SIZE,
    HEAD_INITS,
    MAX_PIXELS,
    OPTIMIZERS,
    POOLING_CHOICES,
    RESIZES,
    REVIEW_RANKERS,
    SCHEDULES,
    TEST_VIEWS,
    WEIGHTS,
    backbone_limits,
)
from .errors import ConfigError
from .paths import resolve
from .tables import header

# How a field's declared type reads in an error, and the values it takes (an int where a float is declared).
_ACCEPTED = {int: ((int,), "a whole number"), float: ((int, float), "a number"), str: ((str,), "text in quotes")}
_ACCEPTED[bool] = ((bool,), "True or False")


def _check_types(config: object) -> None:
    """Every field holds its declared type, before any other check compares or indexes it."""
    names = parameter_names(type(config))
    for field in fields(config):
        _check_type(names[field.name], getattr(config, field.name), field.type)


def _check_type(name: str, value: object, annotation: object) -> None:
    declared = annotation.__args__ if isinstance(annotation, types.UnionType) else (annotation,)
    if getattr(annotation, "__origin__", None) is tuple:  # a list of numbers
        ok = isinstance(value, (list, tuple)) and all(_is(v, float) for v in value)
        expected = "a list of numbers, e.g. [0.01, 0.1, 1.0]"
    else:
        ok = any(_is(value, t) for t in declared)
        expected = " or ".join(_ACCEPTED[t][1] for t in declared)
    if not ok:
        raise ConfigError(f"{name}={value!r} must be {expected}.")


def _is(value: object, declared: type) -> bool:
    return isinstance(value, _ACCEPTED[declared][0]) and (declared is bool or not isinstance(value, bool))


def _check_backbone_resolution(backbone: str, resolution: int, parameter: str) -> None:
    limits = backbone_limits(backbone)
    if limits is None:
        raise ConfigError(
            f"Invalid backbone {backbone!r}. Only {', '.join(BACKBONES)} or timm:<model>[.<tag>] (any timm model, "
            "e.g. timm:convnext_tiny.fb_in22k_ft_in1k) are supported."
        )
    low, high = limits.resolution_range
    if not low <= resolution <= high:
        raise ConfigError(f"{parameter}={resolution} is outside what {backbone} takes: use {low} to {high} pixels.")


def _check_weights(weights: str) -> None:
    if weights not in WEIGHTS and not Path(weights).is_file():
        raise ConfigError(
            f"BACKBONE_WEIGHTS={weights!r} is neither {' nor '.join(map(repr, WEIGHTS))} nor an existing weights file."
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"Invalid {name} {value!r}. Only {', '.join(choices)} are supported.")


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{name}={value!r} must be a fraction strictly between 0 and 1.")


DEFAULT_GROUP_COLUMN = "group"  # used when a CSV manifest has it; any other name must be a column there


def _check_groups(column: str, pattern: str, data_dir: str) -> None:
    """GROUP_PATTERN compiles and names its part ``group``; a GROUP_COLUMN other than the default is a column of the
    CSV manifest DATA_DIR names (checked against its header here, before any image is read)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ConfigError(f"GROUP_PATTERN={pattern!r} is not a regular expression ({error}).") from None
    if pattern and "group" not in compiled.groupindex:
        raise ConfigError(
            f"GROUP_PATTERN={pattern!r} needs a part named group, e.g. r'(?P<group>patient\\d+)_' on 'patient07_3.png'."
        )
    if column.strip().lower() in ("", DEFAULT_GROUP_COLUMN):
        return
    manifest = resolve(data_dir) if data_dir else None
    if manifest is None or not manifest.is_file():
        raise ConfigError(
            f"GROUP_COLUMN={column!r} names a column of a CSV manifest, but DATA_DIR is "
            f"{'a folder' if data_dir else 'the bundled sample'}: for a folder, set GROUP_PATTERN (a pattern on each "
            "file's path) instead."
        )
    try:
        columns = header(manifest)
    except (UnicodeDecodeError, OSError):
        return  # not a readable table: acquisition names the file and the fix
    if column.strip().lower() not in columns:
        raise ConfigError(
            f"GROUP_COLUMN={column!r} is not a column of {manifest}; its columns are {', '.join(columns)}. "
            f"Name one of them, or leave GROUP_COLUMN as {DEFAULT_GROUP_COLUMN!r} (used when there)."
        )


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from, how they are checked, de-duplicated and split."""

    data_dir: str = "{% if cookiecutter.dataset == 'folder' %}data/raw{% endif %}"  # class folders, CSV or URL list; "" = sample
    sample: str = "{% if cookiecutter.dataset != 'folder' %}{{ cookiecutter.dataset }}{% endif %}"  # bundled sample used when data_dir is empty
    download_dir: str = "data/raw/downloads"
    labels_review: str = "data/labels_review.csv"
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    seed: int = 0
    max_per_class: int = 0  # 0 keeps every image
    duplicate_distance: int = 10  # dhash bits (of 256); -1 keeps exact copies only
    drop_duplicates: bool = False
    # copies filed under different labels: one label is wrong, and a copy in test is scored wrong whatever the model
    # says, so only the group's majority label is kept (a tie excludes the group); see choices.CONFLICTING_LABELS
    conflicting_labels: str = "majority"
    # images of one subject (patient, lesion, session) share a split and a fold: a CSV manifest's column naming the
    # subject ("group" is used when there; "" ignores it), or a pattern with a part named group on each path
    group_column: str = DEFAULT_GROUP_COLUMN
    group_pattern: str = ""  # e.g. r"(?P<group>patient\d+)_"; "" = none
    max_pixels: int = MAX_PIXELS
    workers: int = 0  # 0 = one per CPU core

    def __post_init__(self) -> None:
        _check_types(self)
        _check_groups(self.group_column, self.group_pattern, self.data_dir)
        _check_fraction("VAL_FRACTION", self.val_fraction)
        _check_fraction("TEST_FRACTION", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"VAL_FRACTION + TEST_FRACTION = {self.val_fraction + self.test_fraction} "
                "leaves no training images: keep their sum below 1."
            )
        if self.max_per_class < 0:
            raise ConfigError(f"MAX_PER_CLASS={self.max_per_class} must be 0 (all) or positive.")
        if not self.data_dir and not self.sample:
            raise ConfigError(
                "No images: set DATA_DIR (or --data-dir) to a folder with one sub-folder of images per class."
            )
        if not -1 <= self.duplicate_distance <= HASH_SIZE * HASH_SIZE // 4:
            raise ConfigError(
                f"DUPLICATE_DISTANCE={self.duplicate_distance} must be -1 (exact copies only) to "
                f"{HASH_SIZE * HASH_SIZE // 4} bits; 10 suits most photos."
            )
        if not isinstance(self.drop_duplicates, bool):
            raise ConfigError(f"DROP_DUPLICATES={self.drop_duplicates!r} must be True or False.")
        _check_choice("CONFLICTING_LABELS", self.conflicting_labels, CONFLICTING_LABELS)
        if self.max_pixels < 1:
            raise ConfigError(f"MAX_PIXELS={self.max_pixels} must be a positive number of pixels.")
        if self.workers < 0:
            raise ConfigError(f"WORKERS={self.workers} must be 0 (one per core) or positive.")


@dataclass(frozen=True)
class ProbeConfig:
    """The pretrained featurizer and the linear classifier on its pooled features."""

    backbone: str = "{{ cookiecutter.backbone }}"
    weights: str = "pretrained"  # 'pretrained', 'none' or a weights file
    resolution: int = 224
    batch_size: int = 32
    classifier: str = "logistic_regression"
    pooling: str = "auto"  # auto: average, bilinear and multistage tried, the best on validation kept
    resize: str = DEFAULT_RESIZE
    c_grid: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    feature_cache: str = "data/interim/features"  # shared with the label review

    def __post_init__(self) -> None:
        _check_types(self)
        _check_backbone_resolution(self.backbone, self.resolution, "RESOLUTION")
        _check_choice("CLASSIFIER", self.classifier, CLASSIFIERS)
        _check_choice("POOLING", self.pooling, POOLING_CHOICES)
        _check_choice("RESIZE", self.resize, RESIZES)
        _check_weights(self.weights)
        if self.batch_size < 1:
            raise ConfigError(f"BATCH_SIZE={self.batch_size} must be at least 1.")
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ConfigError(f"C_GRID={list(self.c_grid)} must be a non-empty list of positive numbers.")
        object.__setattr__(self, "c_grid", tuple(float(c) for c in self.c_grid))


@dataclass(frozen=True)
class FineTuneConfig:
    """Training the whole network, with a new head, on augmented images."""

    backbone: str = "{{ cookiecutter.backbone }}"
    weights: str = "pretrained"
    resolution: int = 160
    resize: str = DEFAULT_RESIZE
    epochs: int = 9
    batch_size: int = 32
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    label_smoothing: float = 0.1
    flips: str = "auto"  # auto: what suits the data (see ``with_data_defaults``)
    augment_strength: float | str = "auto"
    freeze_blocks: int = 3
    freeze_norms: bool = False  # True: batch norms keep their pretrained statistics while their weights train
    head_init: str = "probe"  # see choices.HEAD_INITS
    backbone_lr_scale: float = 0.1  # the first trained block's share of the learning rate, rising to 1 at the head
    ema_decay: float = 0.0  # > 0: an exponential moving average of the weights competes for the checkpoint
    test_views: str = "auto"  # see choices.TEST_VIEWS
    eval_scales: tuple[float, ...] = (1.0, 1.2, 1.4)  # prediction resolutions, multiples of the training one (FixRes)
    patience: int = 3
    class_weights: str = "none"
    resume: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_backbone_resolution(self.backbone, self.resolution, "FINE_TUNE_RESOLUTION")
        _check_weights(self.weights)
        _check_choice("RESIZE", self.resize, RESIZES)
        _check_choice("OPTIMIZER", self.optimizer, OPTIMIZERS)
        _check_choice("SCHEDULE", self.schedule, SCHEDULES)
        _check_choice("CLASS_WEIGHTS", self.class_weights, CLASS_WEIGHTS)
        if self.epochs < 1:
            raise ConfigError(f"EPOCHS={self.epochs} must be at least 1.")
        if self.batch_size < 1:
            raise ConfigError(f"BATCH_SIZE={self.batch_size} must be at least 1.")
        if self.learning_rate <= 0:
            raise ConfigError(f"LEARNING_RATE={self.learning_rate} must be positive, e.g. 0.001.")
        if self.weight_decay < 0:
            raise ConfigError(f"WEIGHT_DECAY={self.weight_decay} must be 0 or positive.")
        for name, value in (("DROPOUT", self.dropout), ("LABEL_SMOOTHING", self.label_smoothing)):
            if not 0 <= value < 1:
                raise ConfigError(f"{name}={value} must be at least 0 and below 1.")
        _check_choice("FLIPS", self.flips, ("auto", *FLIPS))
        strength = self.augment_strength
        if strength != "auto" and (isinstance(strength, (str, bool)) or not 0 <= strength <= 2):
            raise ConfigError(f"AUGMENT_STRENGTH={strength!r} must be 'auto' or 0 (flips only) to 2.")
        n_blocks = backbone_limits(self.backbone).n_blocks
        if not 0 <= self.freeze_blocks <= n_blocks:
            raise ConfigError(f"FREEZE_BLOCKS={self.freeze_blocks} must be 0 to {n_blocks} for {self.backbone}.")
        if self.patience < 1:
            raise ConfigError(f"PATIENCE={self.patience} must be at least 1 epoch.")
        self._check_recipe()

    def _check_recipe(self) -> None:
        """The transfer recipe's knobs: head start, learning-rate spread, weight average, views, resolutions."""
        _check_choice("HEAD_INIT", self.head_init, HEAD_INITS)
        _check_choice("TEST_VIEWS", self.test_views, TEST_VIEWS)
        if not 0 < self.backbone_lr_scale <= 1:
            raise ConfigError(f"BACKBONE_LR_SCALE={self.backbone_lr_scale} must be above 0 and at most 1.")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"EMA_DECAY={self.ema_decay} must be 0 (off) or below 1, e.g. 0.99.")
        if not self.eval_scales or any(s < 1 for s in self.eval_scales):
            raise ConfigError(f"EVAL_SCALES={list(self.eval_scales)} must list factors of at least 1, e.g. [1.0, 1.4].")
        object.__setattr__(self, "eval_scales", tuple(float(s) for s in self.eval_scales))
        low, high = backbone_limits(self.backbone).resolution_range
        too_large = [s for s in self.eval_scales if round(self.resolution * s) > high]
        if too_large:
            raise ConfigError(
                f"EVAL_SCALES={list(self.eval_scales)}: {too_large[0]} x FINE_TUNE_RESOLUTION={self.resolution} is "
                f"above the {high} pixels {self.backbone} takes."
            )

    def eval_resolutions(self) -> list[int]:
        """The resolutions prediction may use, multiples of 16 from the training one up (FixRes)."""
        return sorted({self.resolution} | {16 * round(self.resolution * s / 16) for s in self.eval_scales})

    def with_data_defaults(self, sample: str) -> "FineTuneConfig":
        """'auto' FLIPS and AUGMENT_STRENGTH made concrete for the run's data: a bundled sample's own
        settings (ELPV's cells have no up or down), a generic choice for anybody else's images, so a
        project baked for one dataset and pointed at another does not keep the first one's settings."""
        suited = data_defaults(sample)
        return replace(
            self,
            flips=suited["flips"] if self.flips == "auto" else self.flips,
            augment_strength=suited["augment_strength"] if self.augment_strength == "auto" else self.augment_strength,
        )


@dataclass(frozen=True)
class ReviewConfig:
    """The look at the data and the label review: a cross-validated probe on pretrained features."""

    backbone: str = "{{ cookiecutter.backbone }}"
    weights: str = "pretrained"
    resolution: int = 224
    resize: str = DEFAULT_RESIZE
    batch_size: int = 32
    folds: int = 5  # cross-validation folds of the label-review probe
    ranker: str = "probability"  # how the review ranks images; see choices.REVIEW_RANKERS
    top: int = 20  # likely label errors listed in the report
    samples_per_class: int = 6  # images shown per class in the grid
    feature_cache: str = "data/interim/features"  # shared with the linear probe

    def __post_init__(self) -> None:
        _check_types(self)
        _check_backbone_resolution(self.backbone, self.resolution, "RESOLUTION")
        _check_weights(self.weights)
        _check_choice("RESIZE", self.resize, RESIZES)
        if self.batch_size < 1:
            raise ConfigError(f"BATCH_SIZE={self.batch_size} must be at least 1.")
        if self.folds < 2:
            raise ConfigError(f"REVIEW_FOLDS={self.folds} must be at least 2.")
        _check_choice("REVIEW_RANKER", self.ranker, REVIEW_RANKERS)
        if self.top < 1 or self.samples_per_class < 1:
            raise ConfigError("REVIEW_TOP and SAMPLES_PER_CLASS must be at least 1.")


@dataclass(frozen=True)
class EvaluateConfig:
    """How the chosen model decides: by its highest probability, or, with two classes, by a threshold on one
    class's probability chosen on validation to reach a recall or a precision (e.g. catch 95% of defects)."""

    target_class: str = ""  # the class whose recall or precision to reach; "" decides by the highest probability
    target_recall: float = 0.0  # e.g. 0.95; 0 means not asked
    target_precision: float = 0.0

    def __post_init__(self) -> None:
        _check_types(self)
        for name, value in (("TARGET_RECALL", self.target_recall), ("TARGET_PRECISION", self.target_precision)):
            if not 0 <= value <= 1:
                raise ConfigError(f"{name}={value} must be between 0 and 1, e.g. 0.95.")
        asked = (self.target_recall > 0) + (self.target_precision > 0)
        if asked and not self.target_class:
            raise ConfigError("TARGET_RECALL or TARGET_PRECISION needs TARGET_CLASS: the class it is about.")
        if asked == 2:
            raise ConfigError("Set TARGET_RECALL or TARGET_PRECISION, not both: one threshold reaches one target.")
        if self.target_class and not asked:
            raise ConfigError(f"TARGET_CLASS={self.target_class!r} needs TARGET_RECALL or TARGET_PRECISION.")


@dataclass(frozen=True)
class DeployConfig:
    """Export and its checks: how many test images compare ONNX Runtime with PyTorch, whether an int8 model is made
    (and on how many training images it is calibrated), where the service listens."""

    check_images: int = 8
    int8: bool = True  # also write model.int8.onnx, kept only within 0.5 point of fp32's validation accuracy
    calibration_images: int = 64
    port: int = 0  # 0 picks a free port

    def __post_init__(self) -> None:
        _check_types(self)
        if self.check_images < 1:
            raise ConfigError(f"CHECK_IMAGES={self.check_images} must be at least 1.")
        if self.calibration_images < 1:
            raise ConfigError(
                f"CALIBRATION_IMAGES={self.calibration_images} must be at least 1 (training images that calibrate the "
                "int8 model; 64 is plenty); set INT8=False to make no int8 model."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"PORT={self.port} must be 0 (any free port) to 65535.")


CONFIGS = (DataConfig, ReviewConfig, ProbeConfig, FineTuneConfig, EvaluateConfig, DeployConfig)


# Fine-tuning settings that depend on the images, per bundled sample; "" is anybody else's images.
DATA_DEFAULTS: dict[str, dict[str, object]] = {
    "": {"flips": "horizontal", "augment_strength": 1.0},  # photos: mirror images are still photos of the class
    "elpv": {"flips": "all", "augment_strength": 0.5},  # cells: any turn or mirror is a valid cell; subtle cracks
    "digits": {"flips": "none", "augment_strength": 1.0},  # a mirrored 2 is no 2
}


def data_defaults(sample: str) -> dict[str, object]:
    return dict(DATA_DEFAULTS.get(sample, DATA_DEFAULTS[""]))


# Fields whose notebook parameter is not simply the field's name in capitals.
RENAMED: dict[type, dict[str, str]] = {
    FineTuneConfig: {"weights": "BACKBONE_WEIGHTS", "resolution": "FINE_TUNE_RESOLUTION"},
    ReviewConfig: {
        "weights": "BACKBONE_WEIGHTS",
        "folds": "REVIEW_FOLDS",
        "ranker": "REVIEW_RANKER",
        "top": "REVIEW_TOP",
    },
    ProbeConfig: {"weights": "BACKBONE_WEIGHTS"},
}


def parameter_names(config: type) -> dict[str, str]:
    """Each field of a config class and the notebook parameter name users write for it."""
    renamed = RENAMED.get(config, {})
    return {field.name: renamed.get(field.name, field.name.upper()) for field in fields(config)}


def unknown_parameters(unknown: list[str], known) -> str:
    """The error for parameter names no notebook declares: the likeliest meant names first, then all of them."""
    guesses = [f"{name}: did you mean {' or '.join(close)}?" for name in unknown if (close := _close(name, known))]
    hint = f" ({'; '.join(guesses)})" if guesses else ""
    return f"Unknown parameter(s) {', '.join(unknown)}{hint}. Valid parameters: {', '.join(sorted(known))}."


def _close(name: str, known) -> list[str]:
    """Names holding ``name`` whole between underscores (WEIGHTS -> BACKBONE_WEIGHTS), else the spellings nearest."""
    name = name.upper()
    holding = [k for k in sorted(known) if name in k.split("_") or f"_{name}" in k or f"{name}_" in k]
    return holding[:2] or difflib.get_close_matches(name, sorted(known), n=2, cutoff=0.6)


def from_parameters(config: type, values: dict[str, object]):
    """A config from notebook parameter names (``-p EPOCHS 5``); unknown names are an error listing the valid ones."""
    names = {name: field for field, name in parameter_names(config).items()}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(unknown_parameters(unknown, names))
    return config(**{names[name]: value for name, value in values.items()})


def check_configs(values: dict[str, object]) -> list:
    """Build every config from the parameters it holds among ``values`` (``pipeline -p``, a profile): each
    check any of them makes (type, range, choice, combination) runs here, before any notebook. Returns them."""
    built = []
    for config in CONFIGS:
        held = set(parameter_names(config).values())
        built.append(from_parameters(config, {name: value for name, value in values.items() if name in held}))
    return built
