"""A decision threshold for two classes, chosen on validation to reach a recall or a precision of one class.

Predicting the target class whenever its probability reaches the threshold trades the two: a lower threshold
catches more of the class (recall) and raises more false alarms (precision). The threshold is chosen on the
validation split's calibrated probabilities, stored with the model, and applied by ``score`` and ``serve``.
"""

import numpy as np

from ..core.config import EvaluateConfig
from ..core.decision import decide
from ..core.errors import ConfigError


def rates(y: np.ndarray, scores: np.ndarray, target: int, threshold: float) -> tuple[float, float]:
    """Recall and precision of ``target`` when it is predicted for every score >= threshold."""
    flagged, actual = scores >= threshold, y == target
    hits = int((flagged & actual).sum())
    return hits / max(1, int(actual.sum())), hits / max(1, int(flagged.sum()))


def choose_threshold(
    y: np.ndarray, probs: np.ndarray, classes: list[str], target_class: str, recall: float = 0.0, precision: float = 0.0
) -> dict[str, object]:
    """For a recall target, the highest threshold that still reaches it (the fewest false alarms); for a
    precision target, the lowest (the most of the class caught)."""
    if len(classes) != 2:
        raise ConfigError(f"TARGET_CLASS needs two classes; this model has {len(classes)}: {', '.join(classes)}.")
    if target_class not in classes:
        raise ConfigError(f"TARGET_CLASS={target_class!r} is not a class; the classes are {', '.join(classes)}.")
    target = classes.index(target_class)
    scores = probs[:, target]
    candidates = np.unique(scores)  # ascending
    measured = [(t, *rates(y, scores, target, t)) for t in candidates]
    if recall:
        reaching = [m for m in measured if m[1] >= recall]
        chosen = max(reaching, key=lambda m: m[0]) if reaching else None
    else:
        reaching = [m for m in measured if m[2] >= precision]
        chosen = min(reaching, key=lambda m: m[0]) if reaching else None
    if chosen is None:
        asked = f"TARGET_RECALL={recall}" if recall else f"TARGET_PRECISION={precision}"
        raise ConfigError(f"No threshold reaches {asked} for {target_class!r} on validation; ask for less.")
    threshold, val_recall, val_precision = chosen
    return {
        "class": target_class,
        "threshold": float(threshold),
        "target": f"recall {recall}" if recall else f"precision {precision}",
        "val_recall": val_recall,
        "val_precision": val_precision,
    }


def decide_on_validation(cfg: EvaluateConfig, classes: list[str], validation: tuple, test: tuple) -> dict | None:
    """The threshold for TARGET_CLASS chosen on validation, then measured once on test; None when not asked."""
    if not cfg.target_class:
        return None
    (y_val, val_probs), (y_test, test_probs) = validation, test
    decision = choose_threshold(y_val, val_probs, classes, cfg.target_class, cfg.target_recall, cfg.target_precision)
    target = classes.index(cfg.target_class)
    decision["test_recall"], decision["test_precision"] = rates(
        y_test, test_probs[:, target], target, decision["threshold"]
    )
    decision["test_accuracy"] = float((decide(test_probs, classes, decision) == y_test).mean())
    print(
        f"threshold {decision['threshold']:.4f} on p({cfg.target_class}) for {decision['target']}: validation recall "
        f"{decision['val_recall']:.3f}, precision {decision['val_precision']:.3f}; test recall "
        f"{decision['test_recall']:.3f}, precision {decision['test_precision']:.3f}"
    )
    return decision
