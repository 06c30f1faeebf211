"""Reviewing labels in the notebook: the candidates (conflicting duplicates first), each decision written to the
labels review file and applied by the next acquisition, undo; and the widget's own buttons doing the same."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers.images import write_stripes_dataset

from {{ cookiecutter.package }}.acquisition.label_review import CONFLICT, DOUBT, LabelReview
from {{ cookiecutter.package }}.acquisition.review_widget import ReviewWidget
from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.run_folder import RunFolder


@pytest.fixture
def acquired(tmp_path):
    """Tiny stripes where one horizontal image was also filed, unchanged, as vertical: a conflicting pair."""
    images = write_stripes_dataset(tmp_path / "images")
    shutil.copy(images / "horizontal" / "horizontal_03.png", images / "vertical" / "copy_of_horizontal_03.png")
    cfg = DataConfig(data_dir=str(images), labels_review=str(tmp_path / "labels_review.csv"), workers=1)
    run = RunFolder.open(tmp_path / "run")
    acquire(cfg, run)
    return cfg, run


def doubtful(run: RunFolder) -> pd.DataFrame:
    """A label-error table as the review writes it: here, two real images doubted."""
    manifest = run.read_manifest()
    rows = manifest[manifest.label == "vertical"].head(2)
    return pd.DataFrame(
        {
            "path": rows.path,
            "label": rows.label,
            "split": rows.split,
            "label_probability": [0.1, 0.2],
            "suggested_label": "horizontal",
            "suggested_probability": [0.9, 0.8],
            "p_horizontal": [0.9, 0.8],
            "p_vertical": [0.1, 0.2],
        }
    )


def test_conflicting_duplicates_come_first_then_doubtful_labels(acquired):
    _, run = acquired
    review = LabelReview.from_run(run, doubtful(run))
    reasons = [c.reason for c in review.candidates]
    assert reasons[0].startswith(CONFLICT) and reasons[1].startswith(CONFLICT)
    assert {c.label for c in review.candidates[:2]} == {"horizontal", "vertical"}
    assert all(r.startswith(DOUBT) for r in reasons[2:]) and len(reasons) >= 3
    assert review.candidates[-1].probabilities == {"horizontal": 0.8, "vertical": 0.2}


def test_decisions_are_written_updated_undone_and_applied_by_the_next_acquisition(acquired):
    cfg, run = acquired
    review = LabelReview.from_run(run, doubtful(run))
    first, second = review.candidates[-2:]
    review.relabel(first, "horizontal", note="looks horizontal")
    review.exclude(second)
    assert review.lines().action.tolist() == ["relabel", "exclude"]
    review.relabel(second, "horizontal")  # a second thought about the same image replaces its line
    assert review.lines().action.tolist() == ["relabel", "relabel"] and len(review.lines()) == 2
    assert review.undo() == second.name and review.decision(second) == "exclude"
    review.keep(first)  # keeping removes the correction
    assert review.decision(first) == "" and review.lines().path.tolist() == [second.name]
    before = {p.name: p.read_bytes() for p in Path(cfg.data_dir).rglob("*.png")}
    acquire(cfg, run)
    manifest = run.read_manifest(usable_only=False).set_index("path")
    assert manifest.loc[second.path, "status"] == "excluded" and "label review" in manifest.loc[second.path, "reason"]
    after = {p.name: p.read_bytes() for p in Path(cfg.data_dir).rglob("*.png")}
    assert after == before, "the review changed an image"


def test_the_widgets_buttons_decide_move_on_and_undo(acquired):
    _, run = acquired
    widget = ReviewWidget(LabelReview.from_run(run, doubtful(run)))
    buttons = {b.description: b for row in widget.box.children[2:4] for b in row.children if hasattr(b, "on_click")}
    assert set(buttons) == {"Keep", "Relabel", "Exclude", "Previous", "Next", "Undo"}
    assert bytes(widget.image.value).startswith(b"\x89PNG") and "given label" in widget.facts.value
    first = widget.current
    widget.new_label.value = "vertical" if first.label == "horizontal" else "horizontal"
    buttons["Relabel"].click()
    assert widget.position == 1, "a decision moves on"
    assert widget.review.decision(first) == f"relabel {widget.review.lines().new_label.iloc[0]}"
    assert "applied by the next run of 01_acquire_data" in widget.saved.value
    buttons["Undo"].click()
    assert widget.position == 0 and widget.review.lines().empty
    buttons["Next"].click()
    buttons["Exclude"].click()
    assert widget.review.lines().action.tolist() == ["exclude"]
