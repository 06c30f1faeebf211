"""Browsing scored test images: the filters and sort choose the right images, pages turn, Grad-CAM on request."""

from types import SimpleNamespace

import numpy as np
import pytest

from {{ cookiecutter.package }}.modeling.model import predict_paths
from {{ cookiecutter.package }}.modeling.results_browser import ResultsBrowser, ResultsPages

CLASSES = ["horizontal", "vertical"]


@pytest.fixture(scope="module")
def evaluation(tiny_images, tiny_classifier):
    paths = sorted(str(p) for p in tiny_images.rglob("*.*g"))
    y_true = np.array([CLASSES.index(p.split("/")[-2]) for p in paths])
    probs = predict_paths(tiny_classifier, paths, 32, "stretch")
    metrics = SimpleNamespace(classes=CLASSES)
    config = {"resolution": 32, "resize": "stretch"}
    scored = {"test_paths": paths, "y_test": y_true, "probs": probs}
    return SimpleNamespace(metrics=metrics, model=tiny_classifier, config=config, **scored)


def test_filters_and_sorting_choose_the_images_asked_for(evaluation):
    pages = ResultsPages(evaluation.test_paths, evaluation.y_test, evaluation.probs, CLASSES)
    everything = pages.select()
    assert len(everything) == len(evaluation.test_paths)
    assert [s.loss for s in everything] == sorted((s.loss for s in everything), reverse=True)
    worst = everything[0]
    assert worst.loss == pytest.approx(-np.log(evaluation.probs[worst.index, evaluation.y_test[worst.index]]), rel=1e-5)
    misses = pages.select(true="horizontal", predicted="vertical", sort="confidence")
    assert all(s.true == "horizontal" and s.predicted == "vertical" for s in misses)
    assert [s.confidence for s in misses] == sorted((s.confidence for s in misses), reverse=True)
    expected = int(((evaluation.y_test == 0) & (evaluation.probs.argmax(1) == 1)).sum())
    assert len(misses) == expected
    with pytest.raises(ValueError, match="Sort by loss or confidence"):
        pages.select(sort="name")


def test_the_widget_pages_filters_and_draws_a_heat_map_on_request(evaluation):
    browser = ResultsBrowser(evaluation, per_page=4)
    assert len(browser.grid.children) == 4 and f"of {len(evaluation.test_paths)} test images" in browser.status.value
    browser.on.click()
    assert browser.page == 1 and browser.status.value.startswith("5-8 of")
    browser.true.value = "vertical"  # a new filter starts again at the first page
    assert browser.page == 0 and all("true vertical" in card.children[1].value for card in browser.grid.children)
    image, _, button = browser.grid.children[0].children
    before = bytes(image.value)
    button.click()
    assert bytes(image.value) != before and bytes(image.value).startswith(b"\x89PNG"), "Grad-CAM replaced the thumbnail"
