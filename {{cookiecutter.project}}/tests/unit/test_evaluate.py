"""Evaluation a person can trust: bootstrap intervals for the test metrics, and calibrated probabilities."""

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from torch import nn

from {{ cookiecutter.package }}.core.decision import decide
from {{ cookiecutter.package }}.core.errors import ConfigError
from {{ cookiecutter.package }}.modeling.calibration import (
    Calibrated,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    log_loss,
)
from {{ cookiecutter.package }}.modeling.evaluate import (
    auc,
    bootstrap_intervals,
    classification_metrics,
    resampled_scores,
    stratified_resamples,
)
from {{ cookiecutter.package }}.modeling.threshold import choose_threshold, rates

CLASSES = ["defective", "functional"]


def predictions(n: int, accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two balanced classes, exactly ``accuracy`` of them right, with noisy probabilities."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    right = rng.permutation(n) < round(accuracy * n)
    predicted = np.where(right, y, 1 - y)
    confidence = rng.uniform(0.55, 1.0, n)
    probs = np.where(predicted == 1, confidence, 1 - confidence)
    return y, np.stack([1 - probs, probs], axis=1)


def test_the_interval_holds_the_estimate_and_narrows_with_more_images():
    widths = []
    for n in (200, 2000):
        y, probs = predictions(n, 0.85)
        point = classification_metrics(y, probs, CLASSES)
        intervals = bootstrap_intervals(y, probs, CLASSES, resamples=500)
        low, high = intervals["accuracy"]
        assert low < point["accuracy"] < high
        assert intervals["auc"][0] < point["auc"] < intervals["auc"][1]
        for name in CLASSES:
            for key in ("precision", "recall"):
                low_c, high_c = intervals["per_class"][name][f"{key}_ci"]
                assert low_c <= point["per_class"][name][key] <= high_c, (name, key)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2, widths  # ~sqrt(10) narrower with ten times the images


def test_a_seeded_bootstrap_repeats_and_another_seed_differs():
    y, probs = predictions(300, 0.8)
    first = bootstrap_intervals(y, probs, CLASSES, resamples=200, seed=0)
    assert first == bootstrap_intervals(y, probs, CLASSES, resamples=200, seed=0)
    assert first != bootstrap_intervals(y, probs, CLASSES, resamples=200, seed=1)


def test_every_resample_keeps_the_class_counts_so_a_rare_class_is_never_missing():
    y = np.array([0] * 97 + [1] * 3)
    probs = np.stack([np.linspace(0.9, 0.6, 100), np.linspace(0.1, 0.4, 100)], axis=1)
    intervals = bootstrap_intervals(y, probs, CLASSES, resamples=300)
    assert not np.isnan(intervals["auc"]).any(), "each resample holds both classes, so AUC is always defined"


@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_resample_scores_what_scikit_learn_scores_on_the_same_images(n_classes):
    """The bootstrap scores all resamples at once: each must equal scikit-learn's metrics on that resample,
    ties in the probabilities included (rounded to two decimals, so many tie)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, n_classes, 90)
    probs = np.round(rng.dirichlet(np.ones(n_classes), 90), 2)
    probs /= probs.sum(axis=1, keepdims=True)
    rows = stratified_resamples(y, 25, rng)
    accuracy, auc_values, precision, recall = resampled_scores(y, probs, rows)
    for i, resample in enumerate(rows):
        truth, scores = y[resample], probs[resample]
        assert np.bincount(truth, minlength=n_classes).tolist() == np.bincount(y, minlength=n_classes).tolist()
        assert accuracy[i] == pytest.approx((scores.argmax(1) == truth).mean())
        assert auc_values[i] == pytest.approx(auc(truth, scores), abs=1e-12)
        p, r, _, _ = precision_recall_fscore_support(
            truth, scores.argmax(1), labels=list(range(n_classes)), zero_division=0
        )
        np.testing.assert_allclose(precision[i], p, atol=1e-12)
        np.testing.assert_allclose(recall[i], r, atol=1e-12)
    if n_classes == 2:
        assert auc_values[0] == pytest.approx(roc_auc_score(y[rows[0]], probs[rows[0], 1]), abs=1e-12)


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities (right as often as they claim), then sharpened: far surer than it is right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    confidence = rng.uniform(0.5, 1.0, n)
    predicted = np.where(rng.random(n) < confidence, y, 1 - y)
    p1 = np.where(predicted == 1, confidence, 1 - confidence)
    sharp = np.stack([1 - p1, p1], axis=1) ** 4
    return y, sharp / sharp.sum(axis=1, keepdims=True)


def test_temperature_scaling_makes_an_overconfident_model_honest_without_changing_a_prediction():
    y, probs = overconfident()
    temperature = fit_temperature(y, probs)
    calibrated = apply_temperature(probs, temperature)
    assert temperature > 1, "an overconfident model is softened"
    assert log_loss(y, calibrated) < log_loss(y, probs)
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, probs) / 2
    assert (calibrated.argmax(axis=1) == probs.argmax(axis=1)).all()


def test_a_temperature_that_helps_nothing_is_one():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.5, 0.5]] * 4)  # no temperature changes a coin flip
    assert fit_temperature(y, probs) == 1.0


def test_the_folded_temperature_gives_the_same_probabilities_as_numpy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)).eval()
    images = torch.randn(16, 4)
    with torch.inference_mode():
        folded = Calibrated(model, 2.5)(images).numpy()
        expected = apply_temperature(model(images).numpy(), 2.5)
    assert np.abs(folded - expected).max() < 1e-6


def test_a_recall_target_gets_the_highest_threshold_that_reaches_it():
    y, probs = predictions(400, 0.8, seed=3)
    decision = choose_threshold(y, probs, CLASSES, "defective", recall=0.9)
    scores = probs[:, 0]
    assert decision["val_recall"] >= 0.9 == rates(y, scores, 0, decision["threshold"])[0] >= 0.9
    higher = scores[scores > decision["threshold"]].min()
    assert rates(y, scores, 0, higher)[0] < 0.9, "one step higher would miss the target"
    labels = decide(probs, CLASSES, decision)
    assert ((labels == 0) == (scores >= decision["threshold"])).all()


def test_a_precision_target_gets_the_lowest_threshold_that_reaches_it():
    y, probs = predictions(400, 0.8, seed=4)
    decision = choose_threshold(y, probs, CLASSES, "functional", precision=0.9)
    scores = probs[:, 1]
    assert decision["val_precision"] >= 0.9
    lower = scores[scores < decision["threshold"]].max()
    assert rates(y, scores, 1, lower)[1] < 0.9, "one step lower would miss the target"


def test_thresholds_need_two_classes_and_a_known_class():
    y, probs = predictions(100, 0.8)
    with pytest.raises(ConfigError, match="TARGET_CLASS='cracked' is not a class"):
        choose_threshold(y, probs, CLASSES, "cracked", recall=0.9)
    three = np.hstack([probs, np.zeros((100, 1))])
    with pytest.raises(ConfigError, match="needs two classes"):
        choose_threshold(y, three, [*CLASSES, "other"], "defective", recall=0.9)
    assert (decide(probs, CLASSES, None) == probs.argmax(axis=1)).all()
