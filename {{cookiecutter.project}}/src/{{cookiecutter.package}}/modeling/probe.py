"""A linear classifier on pooled features, C chosen on the validation split only.

Logistic regression (probabilities) or a linear SVM (the classic of the samples this
template descends from). The fitted scaler + classifier are folded into one
``torch.nn.Linear``, so the backbone and the probe export, score and serve as a
single network.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from ..core.choices import CLASSIFIERS


@dataclass
class ProbeResult:
    pipeline: Pipeline
    best_c: float
    val_accuracy: float
    curve: list[dict[str, float]]  # one row per C: train and validation accuracy


def make_probe(c: float, seed: int = 0, classifier: str = "logistic_regression", standardize: bool = True) -> Pipeline:
    """``standardize=False`` fits on the features as they are: its folded weights stay on their scale (a
    standardized probe folds 1/std into them, huge for a near-constant feature), which a head that goes on
    training needs."""
    scaler = [StandardScaler()] if standardize else []
    if classifier == "linear_svm":
        return make_pipeline(*scaler, LinearSVC(C=c, max_iter=20000, random_state=seed))
    if classifier == "logistic_regression":
        return make_pipeline(*scaler, LogisticRegression(C=c, max_iter=5000, random_state=seed))
    raise ValueError(f"Invalid classifier {classifier!r}. Only {', '.join(CLASSIFIERS)} are supported.")


def logits(probe: Pipeline, x: np.ndarray) -> np.ndarray:
    """Per-class scores; binary classifiers give one score z, written as [0, z]."""
    scores = probe.decision_function(x)
    return np.stack([np.zeros_like(scores), scores], axis=1) if scores.ndim == 1 else scores


def probabilities(probe: Pipeline, x: np.ndarray) -> np.ndarray:
    """Softmax of the logits: logistic regression's own probabilities; for the SVM,
    scores squashed to [0, 1] (ranked like the margins, not calibrated)."""
    z = logits(probe, x)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_grid: tuple[float, ...],
    classifier: str | Callable[[float], Pipeline] = "logistic_regression",
) -> ProbeResult:
    """Fit one probe per C on train; keep the best validation accuracy (ties: lower log-loss). ``classifier``: a
    name (``make_probe``), or a function from C to an unfitted probe."""
    make = classifier if callable(classifier) else lambda c: make_probe(c, classifier=classifier)
    curve, best = [], None
    for c in c_grid:
        probe = make(c).fit(x_train, y_train)
        val_probs = probabilities(probe, x_val)
        row = {
            "C": c,
            "train_accuracy": accuracy_score(y_train, probe.predict(x_train)),
            "val_accuracy": accuracy_score(y_val, probe.classes_[val_probs.argmax(1)]),
            "val_log_loss": log_loss(y_val, val_probs, labels=probe.classes_),
        }
        curve.append(row)
        if best is None or (row["val_accuracy"], -row["val_log_loss"]) > (
            best[1]["val_accuracy"],
            -best[1]["val_log_loss"],
        ):
            best = (probe, row)
    probe, row = best
    return ProbeResult(probe, row["C"], row["val_accuracy"], curve)


def best_log_loss(result: ProbeResult) -> float:
    return next(row["val_log_loss"] for row in result.curve if row["C"] == result.best_c)


def choose_pooling(results: dict[str, ProbeResult]) -> str:
    """The pooling whose probe scored best on validation (ties: lower log-loss, then the one listed first)."""
    order = list(results)
    return min(results, key=lambda p: (-results[p].val_accuracy, best_log_loss(results[p]), order.index(p)))


def pooling_summary(results: dict[str, ProbeResult]) -> dict[str, dict[str, float]]:
    """Each pooling's chosen C and its validation accuracy and log-loss, JSON-ready."""
    return {
        pooling: {"best_c": r.best_c, "val_accuracy": r.val_accuracy, "val_log_loss": best_log_loss(r)}
        for pooling, r in results.items()
    }


def to_linear(probe: Pipeline) -> nn.Linear:
    """The scaler and the linear classifier as one Linear layer giving the ``logits`` above.

    Binary classifiers have one weight vector w: the logits [0, w.x + b] give, through
    softmax, sigmoid(w.x + b), which is logistic regression's probability.
    """
    classifier = probe.steps[-1][1]
    scaler = probe.steps[0][1] if len(probe.steps) > 1 else StandardScaler(with_mean=False, with_std=False)
    scale = scaler.scale_ if scaler.with_std else 1.0
    weight = classifier.coef_ / scale  # fold (x - mean) / scale into the weights
    bias = classifier.intercept_ - (weight @ scaler.mean_ if scaler.with_mean else 0.0)
    if weight.shape[0] == 1:
        weight = np.vstack([np.zeros_like(weight), weight])
        bias = np.concatenate([[0.0], bias])
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head
