"""How probabilities become a label: the highest one, or a threshold on one class chosen on validation.

Shared by evaluation (``modeling.threshold`` chooses the threshold) and deployment (``score``, ``serve``).
"""

import numpy as np


def decide(probs: np.ndarray, classes: list[str], decision: dict | None) -> np.ndarray:
    """Class indices: the highest probability, or the target class wherever its probability reaches the threshold."""
    if not decision:
        return probs.argmax(axis=1)
    target = classes.index(decision["class"])
    return np.where(probs[:, target] >= decision["threshold"], target, 1 - target)
