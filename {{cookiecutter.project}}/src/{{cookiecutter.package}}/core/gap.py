"""Does validation preview test? A flag for when it does not, shown by every report that gives both figures.

Validation chooses the model and fits its temperature; test is scored once, after. When their accuracies differ by
more than their two 95% bootstrap intervals allow (the intervals do not overlap), the validation figure was no fair
preview of test, and what was chosen on it may be wrong too: the flag says so and names what usually causes it. The
temperature's effect is shown on both splits side by side, and the flag names calibration when it helped validation
and hurt test. Nothing here chooses anything: the test figures are read after every choice was made.

It works on plain values (``metrics.json``), so the deployment stage's exit report reads it without torch.
"""

from .formatting import with_interval

TOLERANCE = 0.01  # how much worse test log-loss or calibration error may get before calibration "hurt" test
VAL_ABOVE_TEST = (
    "images of one subject (a patient, a lesion, a scan, a session) on both sides of the train / validation line, so "
    "validation scores subjects the model has seen while test (given, or drawn by subject) does not: name the "
    "subjects with GROUP_COLUMN (a manifest column) or GROUP_PATTERN (a pattern on the file names)",
    "a test set from elsewhere than training and validation (another site, device, time or collection): validation "
    "carved from the training images shares their look, test does not",
    "a validation split too small or too easy to choose on: the choice fits its noise",
)
TEST_ABOVE_VAL = (
    "test images that share subjects or near copies with training images (name the subjects with GROUP_COLUMN or "
    "GROUP_PATTERN)",
    "a test set easier than validation, or from elsewhere",
)


def calibration_effect(calibration: dict) -> dict[str, dict[str, list[float]]]:
    """Log-loss and expected calibration error, [before, after] the temperature, on validation and on test."""
    return {
        split: {
            measure: [calibration[f"{prefix}_{measure}_before"], calibration[f"{prefix}_{measure}_after"]]
            for measure in ("log_loss", "ece")
            if f"{prefix}_{measure}_before" in calibration
        }
        for split, prefix in (("validation", "val"), ("test", "test"))
    }


def calibration_disagrees(calibration: dict) -> bool:
    """The temperature made validation better (log-loss, what it was fitted on) and test worse (log-loss or ECE,
    by more than ``TOLERANCE``)."""
    effect = calibration_effect(calibration)
    helped = effect["validation"].get("log_loss", [0, 0])
    hurt = any(after > before + TOLERANCE for before, after in effect["test"].values())
    return helped[1] < helped[0] and hurt


def judge(val_accuracy: float, val_ci: list[float], test_accuracy: float, test_ci: list[float], calibration: dict):
    """The figures the flag reads, and whether it is raised: the intervals do not overlap, or calibration disagrees."""
    apart = bool(val_ci and test_ci) and (val_ci[0] > test_ci[1] or test_ci[0] > val_ci[1])
    disagrees = calibration_disagrees(calibration)
    return {
        "flagged": apart or disagrees,
        "intervals_apart": apart,
        "gap": val_accuracy - test_accuracy,
        "val_accuracy": val_accuracy,
        "val_accuracy_ci": list(val_ci),
        "test_accuracy": test_accuracy,
        "test_accuracy_ci": list(test_ci),
        "calibration": calibration_effect(calibration),
        "calibration_disagrees": disagrees,
    }


def flag(gap: dict | None) -> str:
    """The flag in Markdown, or "" when validation and test agree (or nothing was judged)."""
    if not gap or not gap.get("flagged"):
        return ""
    figures = (
        f"validation accuracy {with_interval(gap['val_accuracy'], gap['val_accuracy_ci'])}, test "
        f"{with_interval(gap['test_accuracy'], gap['test_accuracy_ci'])}"
    )
    parts = []
    if gap["intervals_apart"]:
        causes = VAL_ABOVE_TEST if gap["gap"] > 0 else TEST_ABOVE_VAL
        parts.append(
            f"**Validation and test disagree**: {figures}, a gap of {abs(gap['gap']):.4f} that their 95% intervals do "
            "not allow (they do not overlap). The model and its temperature were chosen on validation, which was no "
            "fair preview of test. What usually causes it:\n\n" + "\n".join(f"- {cause}" for cause in causes)
        )
    if gap["calibration_disagrees"]:
        parts.append(
            "**Calibration disagrees between the splits**: the temperature fitted on validation "
            f"{_effect(gap['calibration']['validation'])} there, but {_effect(gap['calibration']['test'])} on test. "
            "It is applied all the same (test never chooses anything); read the model's probabilities on new "
            "images with care."
        )
    return "\n\n".join(parts)


def agreement(gap: dict | None) -> str:
    """One line for a report when there is no flag: the two figures and that their intervals overlap."""
    if not gap or gap.get("flagged"):
        return ""
    return (
        f"Validation accuracy {with_interval(gap['val_accuracy'], gap['val_accuracy_ci'])} and test "
        f"{with_interval(gap['test_accuracy'], gap['test_accuracy_ci'])}: their 95% intervals overlap, and the "
        "temperature fitted on validation did not make test worse."
    )


def _effect(split: dict[str, list[float]]) -> str:
    names = {"log_loss": "log-loss", "ece": "expected calibration error"}
    return " and ".join(f"took {names[m]} {before:.4f} -> {after:.4f}" for m, (before, after) in split.items())


def calibration_rows(calibration: dict) -> list[dict[str, str]]:
    """The temperature's effect as table rows: one per measure, validation and test side by side."""
    effect = calibration_effect(calibration)
    names = {"log_loss": "log-loss", "ece": "expected calibration error"}
    return [
        {"measure": names[measure], **{split: _arrow(effect[split].get(measure)) for split in effect}}
        for measure in names
    ]


def _arrow(pair: list[float] | None) -> str:
    return f"{pair[0]:.4f} -> {pair[1]:.4f}" if pair else "not measured"
