"""Calibration: a temperature fitted on validation so probabilities mean what they say, and how far they are off.

Temperature scaling divides the model's log-probabilities by one number T before the softmax: the predicted
class never changes (accuracy and AUC stay), only how sure the model claims to be. T is chosen on validation
by log-loss; ``Calibrated`` folds it into the network, so the exported model serves calibrated probabilities.
"""

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from .model import FLOOR, predict_paths, tempered

T_RANGE = (0.05, 20.0)
BINS = 10


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(probs, FLOOR, 1.0)) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], FLOOR, 1.0)).mean())


def fit_temperature(y: np.ndarray, probs: np.ndarray) -> float:
    """The T in ``T_RANGE`` with the lowest validation log-loss; 1 (no change) unless another does better."""
    result = minimize_scalar(
        lambda log_t: log_loss(y, apply_temperature(probs, float(np.exp(log_t)))),
        bounds=tuple(np.log(T_RANGE)),
        method="bounded",
    )
    temperature = float(np.exp(result.x))
    return temperature if log_loss(y, apply_temperature(probs, temperature)) < log_loss(y, probs) else 1.0


def reliability(y: np.ndarray, probs: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per confidence bin: how sure the model was on average, how often it was right, how many images."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
            "count": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """The gap between confidence and accuracy, averaged over confidence bins weighted by their images."""
    rows = reliability(y, probs, bins)
    return float(sum(abs(r["confidence"] - r["accuracy"]) * r["count"] for r in rows) / len(y))


def calibrate(model, config: dict, manifest) -> tuple[float, dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """The chosen model's temperature, fitted on validation (never on test), and what it changed there."""
    val = manifest[manifest.split == "val"]
    y_val = val.label.map({name: i for i, name in enumerate(config["classes"])}).to_numpy()
    val_probs = predict_paths(model, list(val.path), config["resolution"], config["resize"])
    temperature = fit_temperature(y_val, val_probs)
    calibrated = apply_temperature(val_probs, temperature)
    summary = calibration_summary(y_val, val_probs, calibrated, temperature)
    before, after = summary["val_log_loss_before"], summary["val_log_loss_after"]
    print(f"temperature {temperature:.3f}: validation log-loss {before:.4f} -> {after:.4f}")
    return temperature, summary, (y_val, calibrated)


def calibration_summary(y_val, val_probs, calibrated, temperature: float) -> dict[str, float]:
    before, after = log_loss(y_val, val_probs), log_loss(y_val, calibrated)
    return {
        "temperature": temperature,
        "val_log_loss_before": before,
        "val_log_loss_after": after,
        "val_ece_before": expected_calibration_error(y_val, val_probs),
        "val_ece_after": expected_calibration_error(y_val, calibrated),
    }


class Calibrated(nn.Module):
    """A classifier giving probabilities, with its temperature folded in: what export writes to ONNX."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return tempered(self.model(images), self.temperature)
