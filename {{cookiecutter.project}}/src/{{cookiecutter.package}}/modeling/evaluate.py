"""Metrics on one split: accuracy, AUC, per-class precision/recall, confusion matrix."""

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


def candidates(models_dir: Path) -> list[dict]:
    """Every trained model's saved config (with its validation accuracy), best first.

    Ties go to the model listed first by name order, so a run is repeatable.
    """
    found = [
        json.loads(p.read_text()) | {"name": p.parent.name, "dir": str(p.parent)}
        for p in sorted(models_dir.glob("*/model.json"))
    ]
    if not found:
        raise FileNotFoundError(f"No trained models under {models_dir}: run the modeling notebooks first.")
    return sorted(found, key=lambda c: -c["val_accuracy"])
