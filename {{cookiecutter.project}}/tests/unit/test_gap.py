"""Reports notice when validation and test disagree: accuracy further apart than the two bootstrap intervals allow,
or a temperature that helped validation and hurt test. The flag is shown where they differ, absent where they agree,
in the model report and in the exit report alike."""

from dataclasses import asdict

import numpy as np
import pytest

from {{ cookiecutter.package }}.core import gap
from {{ cookiecutter.package }}.core.results import Metrics
from {{ cookiecutter.package }}.core.run_folder import RunFolder
from {{ cookiecutter.package }}.deployment.report import write_exit_report
from {{ cookiecutter.package }}.modeling import report
from {{ cookiecutter.package }}.modeling.evaluate import accuracy_interval, bootstrap_intervals

HELPS_BOTH = {
    "temperature": 1.4,
    **{"val_log_loss_before": 0.52, "val_log_loss_after": 0.45, "val_ece_before": 0.08, "val_ece_after": 0.03},
    **{"test_log_loss_before": 0.55, "test_log_loss_after": 0.49, "test_ece_before": 0.09, "test_ece_after": 0.04},
}
HURTS_TEST = {**HELPS_BOTH, "test_log_loss_after": 0.61, "test_ece_before": 0.113, "test_ece_after": 0.247}
APART = (0.979, [0.965, 0.991], 0.675, [0.630, 0.720])  # validation carved image by image, test from other scans
CLOSE = (0.86, [0.83, 0.89], 0.84, [0.81, 0.87])


def test_accuracies_apart_beyond_their_intervals_raise_the_flag_with_its_usual_causes():
    flagged = gap.judge(*APART, HELPS_BOTH)
    assert flagged["flagged"] and flagged["intervals_apart"] and not flagged["calibration_disagrees"]
    text = gap.flag(flagged)
    assert "**Validation and test disagree**: validation accuracy 0.9790 [0.9650, 0.9910], test 0.6750" in text
    assert "a gap of 0.3040" in text and "GROUP_COLUMN" in text and "a test set from elsewhere" in text
    assert gap.agreement(flagged) == ""
    close = gap.judge(*CLOSE, HELPS_BOTH)
    assert not close["flagged"] and gap.flag(close) == ""
    assert gap.agreement(close).startswith("Validation accuracy 0.8600 [0.8300, 0.8900] and test 0.8400")
    touching = gap.judge(0.90, [0.86, 0.94], 0.82, [0.78, 0.86], HELPS_BOTH)
    assert not touching["flagged"], "intervals that meet still allow the gap"


def test_a_temperature_that_helps_validation_and_hurts_test_is_named_even_when_accuracies_agree():
    judged = gap.judge(*CLOSE, HURTS_TEST)
    assert judged["flagged"] and judged["calibration_disagrees"] and not judged["intervals_apart"]
    text = gap.flag(judged)
    assert "**Calibration disagrees between the splits**" in text
    assert "expected calibration error 0.1130 -> 0.2470 on test" in text
    assert "Validation and test disagree" not in text
    assert not gap.calibration_disagrees({**HURTS_TEST, "val_log_loss_after": 0.52}), "no change on validation"
    rows = {row["measure"]: row for row in gap.calibration_rows(HURTS_TEST)}
    assert rows["log-loss"] == {"measure": "log-loss", "validation": "0.5200 -> 0.4500", "test": "0.5500 -> 0.6100"}


def test_the_validation_interval_is_drawn_like_the_test_interval():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    probs = np.where(rng.random(400) < 0.8, y, 1 - y)[:, None] == np.arange(2)
    probs = probs * 0.8 + 0.1
    low, high = accuracy_interval(y, probs, resamples=300)
    reference = bootstrap_intervals(y, probs, ["a", "b"], resamples=300)["accuracy"]
    assert low < float((probs.argmax(1) == y).mean()) < high
    assert np.allclose([low, high], reference, atol=0.02)
    assert accuracy_interval(y, probs, resamples=300) == [low, high], "seeded"


def metrics(judged: dict) -> Metrics:
    return Metrics(
        test_accuracy=judged["test_accuracy"],
        test_auc=0.9,
        test_accuracy_ci=judged["test_accuracy_ci"],
        test_auc_ci=[0.85, 0.95],
        val_accuracy=judged["val_accuracy"],
        **{"n_train": 100, "n_val": 40, "n_test": 60, "classes": ["a", "b"], "backbone": "efficientnet_lite0"},
        **{"resolution": 64, "resize": "stretch", "classifier": "logistic_regression", "model_dir": "models/probe"},
        candidates={"probe": judged["val_accuracy"]},
        candidates_on_test={"probe": {"test_accuracy": judged["test_accuracy"]}},
        probe_pooling={},
        per_class={
            c: {"precision": 0.8, "recall": 0.8, "precision_ci": [0.7, 0.9], "recall_ci": [0.7, 0.9], "support": 30}
            for c in ("a", "b")
        },
        confusion_matrix=[[24, 6], [6, 24]],
        run_dir="",
        bootstrap={"resamples": 1000, "level": 0.95},
        calibration=HURTS_TEST if judged["calibration_disagrees"] else HELPS_BOTH,
        decision=None,
        val_accuracy_ci=judged["val_accuracy_ci"],
        gap=judged,
    )


@pytest.mark.parametrize(("figures", "calibration", "shown"), [(APART, HELPS_BOTH, True), (CLOSE, HELPS_BOTH, False)])
def test_the_model_and_exit_reports_show_the_flag_only_where_validation_and_test_differ(
    tmp_path, monkeypatch, figures, calibration, shown
):
    judged = metrics(gap.judge(*figures, calibration))
    monkeypatch.setattr(report, "earlier_runs", lambda tracker: report.pd.DataFrame())
    model_report = report.write_model_report(RunFolder.open(tmp_path / "run"), judged, tracker=None).read_text()
    assert ("**Validation and test disagree**" in model_report) == shown
    assert ("their 95% intervals overlap" in model_report) == (not shown)
    assert "| expected calibration error | 0.0800 -> 0.0300 | 0.0900 -> 0.0400 |" in model_report
    metadata = {"classifier": "logistic_regression", "backbone": "efficientnet_lite0", "resolution": 64}
    metadata |= {"resize": "stretch", "classes": ["a", "b"], "int8": None}
    registered = {"name": "model", "version": 1, "alias": "candidate"}
    exit_report = write_exit_report(tmp_path / "exit.md", tmp_path, metadata, asdict(judged), registered, "")
    assert ("**Validation and test disagree**" in exit_report.read_text()) == shown
