"""Metrics on one split: accuracy, AUC, per-class precision/recall, confusion matrix, and their uncertainty."""

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score


def auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUC of the second class, or macro one-vs-rest AUC for more classes."""
    n_classes = probs.shape[1]
    if len(np.unique(y_true)) < 2:
        return float("nan")  # undefined when the split holds one class
    if n_classes == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(n_classes))))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, object]:
    """Everything the model report needs, as JSON-ready values; ``y_true`` holds class indices."""
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "auc": auc(y_true, probs),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
    }


def bootstrap_intervals(
    y_true: np.ndarray, probs: np.ndarray, classes: list[str], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, object]:
    """Percentile bootstrap intervals for accuracy, AUC and each class's precision and recall.

    Stratified: each resample draws every class's images with replacement, keeping the class counts of the
    split, so a rare class is never missing from a resample. Seeded, so a run reports the same interval twice.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y_true == c) for c in range(len(classes))]
    by_class = [rows for rows in by_class if len(rows)]
    labels = list(range(len(classes)))
    accuracy, auc_values, precision, recall = [], [], [], []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(members, size=len(members)) for members in by_class])
        truth, scores = y_true[rows], probs[rows]
        predicted = scores.argmax(axis=1)
        accuracy.append(float((predicted == truth).mean()))
        auc_values.append(auc(truth, scores))
        p, r, _, _ = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
        precision.append(p)
        recall.append(r)
    tails = [50 * (1 - level), 50 * (1 + level)]

    def interval(values) -> list[float]:
        return [float(v) for v in np.nanpercentile(np.asarray(values, dtype=float), tails, axis=0)]

    precision_ci, recall_ci = (np.nanpercentile(np.asarray(v), tails, axis=0) for v in (precision, recall))
    return {
        "accuracy": interval(accuracy),
        "auc": interval(auc_values),
        "per_class": {
            name: {"precision_ci": precision_ci[:, i].tolist(), "recall_ci": recall_ci[:, i].tolist()}
            for i, name in enumerate(classes)
        },
        "resamples": resamples,
        "level": level,
    }


def accuracy_interval(
    y_true: np.ndarray, probs: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """The percentile bootstrap interval of accuracy alone, drawn as ``bootstrap_intervals`` draws (stratified,
    seeded): for validation, beside the test interval."""
    rng = np.random.default_rng(seed)
    correct = probs.argmax(axis=1) == y_true
    by_class = [correct[y_true == c] for c in np.unique(y_true)]
    if not by_class:
        return []
    draws = np.zeros(resamples)
    for members in by_class:
        draws += members[rng.integers(0, len(members), (resamples, len(members)))].sum(axis=1)
    accuracy = draws / len(y_true)
    return [float(v) for v in np.percentile(accuracy, [50 * (1 - level), 50 * (1 + level)])]


def largest_losses(y_true: np.ndarray, probs: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` images with the largest log-loss, worst first."""
    loss = -np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0))
    return np.argsort(-loss, kind="stable")[:count]


def candidates(models_dir: Path) -> list[dict]:
    """Every trained model's saved config (with its validation accuracy), best first.

    Ties go to the simpler model (an ensemble after any single network: it costs one network's time to serve), then
    to the model listed first by name order, so a run is repeatable.
    """
    found = [
        json.loads(p.read_text()) | {"name": p.parent.name, "dir": str(p.parent)}
        for p in sorted(models_dir.glob("*/model.json"))
    ]
    if not found:
        raise FileNotFoundError(f"No trained models under {models_dir}: run the modeling notebooks first.")
    return sorted(found, key=lambda c: (-c["val_accuracy"], len(c.get("members", []))))
