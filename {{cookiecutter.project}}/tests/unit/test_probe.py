import numpy as np
import pytest
import torch

from {{ cookiecutter.package }}.modeling.probe import (
    choose_pooling,
    fit_probe,
    logits,
    make_probe,
    pooling_summary,
    probabilities,
    to_linear,
)


def blobs(n_classes: int, n: int = 60, dim: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, dim)) * 3 + y[:, None] * 1.5 + 10  # offset and scale: the scaler matters
    return x.astype(np.float32), y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_folded_head_gives_scikit_learn_probabilities(n_classes):
    x, y = blobs(n_classes)
    probe = make_probe(0.5).fit(x, y)
    with torch.inference_mode():
        folded = torch.softmax(to_linear(probe)(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(folded, probe.predict_proba(x), atol=1e-5)


def test_c_is_chosen_by_validation_accuracy():
    x, y = blobs(2, n=80, seed=1)
    result = fit_probe(x[:50], y[:50], x[50:], y[50:], (1e-4, 1e-2, 1.0))
    accuracies = [row["val_accuracy"] for row in result.curve]
    assert [row["C"] for row in result.curve] == [1e-4, 1e-2, 1.0]
    assert result.val_accuracy == max(accuracies)
    assert result.best_c == result.curve[accuracies.index(max(accuracies))]["C"]
    assert result.pipeline.named_steps["logisticregression"].C == result.best_c


@pytest.mark.parametrize("n_classes", [2, 3])
def test_folded_linear_svm_gives_the_same_scores_and_predictions(n_classes):
    x, y = blobs(n_classes)
    svm = make_probe(0.1, classifier="linear_svm").fit(x, y)
    with torch.inference_mode():
        folded = to_linear(svm)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(folded, logits(svm, x), atol=1e-4)
    assert (folded.argmax(1) == svm.predict(x)).all()
    assert np.allclose(probabilities(svm, x).sum(1), 1)


def test_unknown_classifier_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Invalid classifier 'forest'. Only logistic_regression, linear_svm"):
        make_probe(1.0, classifier="forest")


def test_the_pooling_with_the_better_validation_accuracy_is_chosen():
    x, y = blobs(2, n=80, seed=1)
    noise = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    results = {
        "average": fit_probe(noise[:50], y[:50], noise[50:], y[50:], (0.01, 1.0)),  # no signal
        "bilinear": fit_probe(x[:50], y[:50], x[50:], y[50:], (0.01, 1.0)),
    }
    assert results["bilinear"].val_accuracy > results["average"].val_accuracy
    assert choose_pooling(results) == "bilinear"
    assert choose_pooling({"bilinear": results["bilinear"], "average": results["bilinear"]}) == "bilinear"  # tie
    summary = pooling_summary(results)
    assert summary["bilinear"]["val_accuracy"] == results["bilinear"].val_accuracy
    assert summary["average"]["best_c"] in (0.01, 1.0)
