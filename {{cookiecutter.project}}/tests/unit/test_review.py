"""Label review: likely errors found without leakage, and the user's corrections applied."""

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package }}.acquisition.review import (
    apply_review,
    likely_label_errors,
    out_of_fold_probabilities,
    read_review,
)
from {{ cookiecutter.package }}.core.errors import DataError


def manifest_of(paths, labels):
    return pd.DataFrame({"path": paths, "label": labels, "status": "ok", "reason": "", "origin": paths})


def test_corrections_relabel_and_exclude(tmp_path):
    review_file = tmp_path / "labels_review.csv"
    review_file.write_text(
        f"path,action,new_label,note\n{tmp_path}/cat/1.png,relabel,dog,ears say dog\ncat/2.png, Exclude ,,blurred\n"
    )
    paths = [f"{tmp_path}/cat/{i}.png" for i in range(3)]
    manifest = manifest_of(paths, ["cat"] * 3).assign(origin=[f"cat/{i}.png" for i in range(3)])
    reviewed = apply_review(manifest, read_review(review_file), tmp_path, str(review_file)).set_index("path")
    assert reviewed.loc[paths[1], ["label", "status"]].tolist() == ["dog", "ok"]
    assert reviewed.loc[paths[1], "review"] == "relabelled cat -> dog (ears say dog)"
    assert reviewed.loc[paths[2], ["status", "reason"]].tolist() == ["excluded", "excluded in label review (blurred)"]
    assert reviewed.loc[paths[0], ["label", "status", "review"]].tolist() == ["cat", "ok", ""]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,action,new_label,note\na.png,rename,b,\n", "line 2: action 'rename'"),
        ("path,action,new_label,note\na.png,relabel,,\n", "line 2: 'relabel' needs the new label"),
        ("file,verdict\na.png,exclude\n", "needs the columns"),
        ("path,action,new_label,note\nmissing.png,exclude,,\n", "line 2: 'missing.png' is not in the data"),
    ],
)
def test_bad_review_lines_are_named(tmp_path, text, message):
    review_file = tmp_path / "labels_review.csv"
    review_file.write_text(text)
    with pytest.raises(DataError, match=message):
        apply_review(manifest_of(["a.png"], ["cat"]), read_review(review_file), tmp_path, str(review_file))


def test_no_review_file_means_no_corrections(tmp_path):
    assert read_review(tmp_path / "absent.csv").empty


def test_out_of_fold_probabilities_rank_flipped_labels_first():
    rng = np.random.default_rng(0)
    labels = np.array(["a"] * 60 + ["b"] * 60)
    features = rng.normal(0, 1, (120, 8)) + np.where(labels == "a", -2.0, 2.0)[:, None]
    flipped = [5, 70]
    given = labels.copy()
    given[flipped] = ["b", "a"]
    groups = np.arange(120).astype(str)
    probabilities, classes = out_of_fold_probabilities(features, given, groups, folds=5)
    assert classes == ["a", "b"] and np.allclose(probabilities.sum(1), 1)
    ranked = likely_label_errors(manifest_of([f"{i}.png" for i in range(120)], given), probabilities, classes)
    assert set(ranked.path.head(2)) == {"5.png", "70.png"}
    assert ranked.suggested_label.head(2).tolist() == [labels[int(p.split(".")[0])] for p in ranked.path.head(2)]


def test_out_of_fold_never_trains_on_a_copy_of_the_image_it_scores():
    rng = np.random.default_rng(1)
    features = rng.normal(0, 1, (40, 4))
    labels = np.array(["a", "b"] * 20)
    features[1] = features[0]  # two copies of one picture, labelled differently
    groups = np.array(["copy", "copy"] + [str(i) for i in range(38)])
    probabilities, _ = out_of_fold_probabilities(features, labels, groups, folds=4, c=1000.0)
    # a probe that had seen the copy would be near-certain of the copy's label
    assert 0.05 < probabilities[0, 0] < 0.95 and 0.05 < probabilities[1, 1] < 0.95
