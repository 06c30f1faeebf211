"""The ensemble candidate: the linear probe's and the fine-tuned network's calibrated probabilities, averaged.

One network, ``model.EnsembleClassifier``: it reads images at the larger member's resolution and resizes them
inside for the other. Everything is chosen on validation, on what this network computes: its members' outputs as
it feeds them (resized inside, mirrored views and all), run by ONNX Runtime as scoring runs them, once; each
member's temperature fitted on them (``calibration.fit_temperature``); then w, the fine-tuned network's share,
from ``WEIGHT_GRID`` (ties go to the share nearest ``TIE``), each w's accuracy that of the network's own
``average`` of those outputs. The validation accuracy it competes with the other candidates on is the chosen
w's: the ensemble's as it will predict. The test split is never read here.

The members' weights and configs are saved inside the ensemble's own folder: re-training a member later leaves
a saved ensemble as it was measured.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .calibration import fit_temperature
from .model import CONFIG_FILE, WEIGHTS_FILE, EnsembleClassifier, load_classifier, predict_paths

WEIGHT_GRID = (0.25, 0.5, 0.75)  # the fine-tuned network's share; the probe's is 1 - w
TIE = 0.5  # of shares tied on validation, the nearest to this wins (then the smaller)
CLASSIFIER = "ensemble"  # the ensemble's ``classifier`` in its config, metrics.json and the model card


@dataclass
class EnsembleFit:
    """The ensemble as measured on validation, and the config ``save_classifier`` writes beside it."""

    model: EnsembleClassifier
    config: dict

    @property
    def weight(self) -> float:
        """w, the fine-tuned network's share."""
        return self.config["weight"]

    @property
    def val_accuracy(self) -> float:
        return self.config["val_accuracy"]

    def summary(self) -> str:
        """One line: the members' validation accuracies, the weight chosen, the ensemble's validation accuracy."""
        members = ", ".join(f"{m['name']} {m['config']['val_accuracy']:.4f}" for m in self.config["members"])
        grid = ", ".join(f"{w} {a:.4f}" for w, a in self.config["weight_grid"].items())
        return (
            f"ensemble: validation accuracy {members}; w = {self.weight:g} for {self.config['members'][-1]['name']} "
            f"(tried {grid}) -> ensemble {self.val_accuracy:.4f}"
        )


class MemberOutputs(nn.Module):
    """An ensemble's members' own probabilities side by side, (N, members x classes), each member fed as the
    ensemble feeds it: what its temperatures and weight are fitted on."""

    def __init__(self, ensemble: EnsembleClassifier) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.ensemble.member_outputs(images), dim=1)


def unavailable(probe_dir: Path, fine_tuned_dir: Path) -> str:
    """Why the two folders' models cannot be averaged, or "" when they can: both must be saved models with the
    same classes, their images made square the same way (one resize inside the network cannot turn a crop into a
    pad)."""
    missing = [d.name for d in (probe_dir, fine_tuned_dir) if not (d / WEIGHTS_FILE).is_file()]
    if missing:
        return f"no saved {' or '.join(missing)} model"
    probe, fine = (json.loads((d / CONFIG_FILE).read_text()) for d in (probe_dir, fine_tuned_dir))
    if probe["classes"] != fine["classes"]:
        return f"the members' classes differ ({probe['classes']} and {fine['classes']})"
    if probe["resize"] != fine["resize"]:
        return f"the members make images square differently (RESIZE {probe['resize']!r} and {fine['resize']!r})"
    return ""


def accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


def choose_weight(accuracies: dict[float, float]) -> float:
    """The most accurate w (on validation), ties going to the w nearest ``TIE``, then to the smaller."""
    best = max(accuracies.values())
    return min((w for w, a in accuracies.items() if a == best), key=lambda w: (abs(w - TIE), w))


def fit_ensemble(
    probe_dir: Path, fine_tuned_dir: Path, manifest: pd.DataFrame, grid: tuple[float, ...] = WEIGHT_GRID
) -> EnsembleFit:
    """The two saved models averaged: temperatures and weight fitted on the manifest's validation split only."""
    (probe, probe_config), (fine, fine_config) = load_classifier(probe_dir), load_classifier(fine_tuned_dir)
    classes, resize = fine_config["classes"], fine_config["resize"]
    resolutions = [probe_config["resolution"], fine_config["resolution"]]
    val = manifest[manifest.split == "val"]
    y = val.label.map({name: i for i, name in enumerate(classes)}).to_numpy()
    untempered = EnsembleClassifier([probe, fine], resolutions, [1.0, 1.0], [0.5, 0.5])
    outputs = predict_paths(MemberOutputs(untempered), list(val.path), untempered.resolution, resize)
    outputs = np.split(outputs, 2, axis=1)
    temperatures = [fit_temperature(y, probs) for probs in outputs]

    def ensemble(w: float) -> EnsembleClassifier:
        return EnsembleClassifier([probe, fine], resolutions, temperatures, [1 - w, w]).eval()

    members_out = [torch.from_numpy(probs) for probs in outputs]
    with torch.inference_mode():
        tried = {float(w): accuracy(y, ensemble(w).average(members_out).numpy()) for w in grid}
    weight = choose_weight(tried)
    members = [
        {"name": d.name, "weight": share, "temperature": t, "val_accuracy_in_ensemble": accuracy(y, p), "config": c}
        for d, share, t, p, c in zip(
            (probe_dir, fine_tuned_dir), (1 - weight, weight), temperatures, outputs, (probe_config, fine_config)
        )
    ]
    config = {
        "backbone": fine_config["backbone"],  # the member Grad-CAM explains; each member's is in ``members``
        "resolution": max(resolutions),
        "resize": resize,
        "classes": classes,
        "classifier": CLASSIFIER,
        "val_accuracy": tried[weight],
        "weight": weight,
        "weight_grid": {str(w): a for w, a in tried.items()},
        "members": members,
    }
    return EnsembleFit(ensemble(weight), config)
