"""Metrics on one split: accuracy, AUC, per-class precision/recall, confusion matrix, and their uncertainty."""

import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
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
    All resamples are scored at once (``resampled_scores``): a thousand calls into scikit-learn took seconds.
    """
    rows = stratified_resamples(y_true, resamples, np.random.default_rng(seed))
    accuracy, auc_values, precision, recall = resampled_scores(y_true, probs, rows)
    tails = [50 * (1 - level), 50 * (1 + level)]

    def interval(values) -> list[float]:
        return [float(v) for v in np.nanpercentile(np.asarray(values, dtype=float), tails, axis=0)]

    precision_ci, recall_ci = (np.nanpercentile(v, tails, axis=0) for v in (precision, recall))
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


def stratified_resamples(y_true: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) row indices: each row draws every class's images with replacement, class counts kept."""
    by_class = [np.flatnonzero(y_true == c) for c in np.unique(y_true)]
    return np.concatenate([rng.choice(members, size=(resamples, len(members))) for members in by_class], axis=1)


def resampled_scores(y_true: np.ndarray, probs: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Accuracy, AUC (as ``auc``), and each class's precision and recall (0 where nothing was predicted as the
    class, as scikit-learn's ``zero_division=0``) of every resample in ``rows``: (R,), (R,), (R, C), (R, C)."""
    truth, predicted = y_true[rows], probs.argmax(axis=1)[rows]
    n_classes = probs.shape[1]
    accuracy = (predicted == truth).mean(axis=1)
    hits = np.stack([((predicted == c) & (truth == c)).sum(axis=1) for c in range(n_classes)], axis=1)
    said = np.stack([(predicted == c).sum(axis=1) for c in range(n_classes)], axis=1)
    real = np.stack([(truth == c).sum(axis=1) for c in range(n_classes)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(said > 0, hits / said, 0.0)
        recall = np.where(real > 0, hits / real, 0.0)
    return accuracy, _resampled_auc(truth, probs[rows]), precision, recall


def _resampled_auc(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``auc`` of each resample (rows of ``truth``, (R, n); ``scores``, (R, n, C)): the Mann-Whitney statistic,
    ties counting a half, which is the area scikit-learn computes; binary, or the macro mean one-vs-rest."""
    if len(np.unique(truth[0])) < 2:
        return np.full(len(truth), np.nan)
    n_classes = scores.shape[2]
    columns = [1] if n_classes == 2 else range(n_classes)
    per_class = []
    for c in columns:
        positive = truth == c
        ranks = rankdata(scores[:, :, c], axis=1)
        n_pos, n_neg = positive.sum(axis=1), (~positive).sum(axis=1)
        u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class.append(u / (n_pos * n_neg))
    return np.mean(per_class, axis=0)


def accuracy_interval(
    y_true: np.ndarray, probs: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """The percentile bootstrap interval of accuracy alone, drawn as ``bootstrap_intervals`` draws (stratified,
    seeded): for validation, beside the test interval."""
    if not len(y_true):
        return []
    rows = stratified_resamples(y_true, resamples, np.random.default_rng(seed))
    accuracy = (probs.argmax(axis=1) == y_true)[rows].mean(axis=1)
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
