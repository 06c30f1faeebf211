"""The evaluation figures that need modeling's measures (losses, calibration bins); the rest are in core."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..core.plots import save, thumbnail_rows
from .calibration import expected_calibration_error
from .calibration import reliability as bins
from .evaluate import largest_losses as worst_first


def largest_losses(
    paths: list[str], y_true: np.ndarray, probs: np.ndarray, classes: list[str], count: int = 12, path=None
) -> plt.Figure:
    """The test images the model got most wrong (largest log-loss), with their true and predicted labels."""
    worst = worst_first(y_true, probs, count)
    items = [
        (paths[i], f"true {classes[y_true[i]]}\npred {classes[probs[i].argmax()]} {probs[i].max():.2f}") for i in worst
    ]
    columns = 6
    rows = [(f"#{i + 1}", items[i : i + columns]) for i in range(0, len(items), columns)]
    return thumbnail_rows(rows, columns, "Largest test losses (true label, prediction and its probability)", path)


def reliability(y_true: np.ndarray, before: np.ndarray, after: np.ndarray, path: Path | None = None) -> plt.Figure:
    """Reliability diagram: accuracy against confidence per bin, before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for probs, name in ((before, "before"), (after, "after temperature scaling")):
        rows = bins(y_true, probs)
        ece = expected_calibration_error(y_true, probs)
        label = f"{name} (ECE {ece:.3f})"
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=label)
    ax.set(xlabel="confidence (highest probability)", ylabel="accuracy", title="Reliability on the test split")
    ax.legend(loc="upper left")
    return save(fig, path)
