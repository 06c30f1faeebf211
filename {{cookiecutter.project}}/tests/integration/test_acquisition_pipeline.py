"""Acceptance: a messy folder through stage 1 on the command line (acquire, then review), with a label review."""

import hashlib
import subprocess
import sys

import pandas as pd
import pytest
from helpers.images import write_messy_dataset

pytestmark = pytest.mark.notebooks
PACKAGE = "{{ cookiecutter.package }}"


def digest(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("messy data")
    files = write_messy_dataset(data)
    review_file = tmp_path_factory.mktemp("review") / "labels_review.csv"
    review_file.write_text(
        "path,action,new_label,note\n"
        "vertical/vertical_03.jpg,exclude,,two cells in one image\n"
        f"{data}/horizontal/horizontal_05.jpg,relabel,vertical,checked by eye\n",
        encoding="utf-8",
    )
    before = digest(data)
    out = tmp_path_factory.mktemp("run")
    for command in (
        ["acquire", "-p", "DATA_DIR", str(data), "-p", "LABELS_REVIEW", str(review_file)],
        ["review", "-p", "RESOLUTION", "96", "-p", "FEATURE_CACHE", str(out / "features")],  # not the project's
    ):
        command = [sys.executable, "-m", PACKAGE, command[0], "--run-dir", str(out), *command[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert digest(data) == before, "the pipeline changed, added or removed a source file"
    return data, files, out


def test_every_excluded_file_is_in_the_report_with_its_reason(messy_run):
    data, files, out = messy_run
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    excluded = manifest[manifest.status == "excluded"].set_index("path")
    bad = {str(files[k]) for k in ("truncated", "empty", "not_an_image", "bomb")}
    assert bad <= set(excluded.index)
    report = (out / "docs" / "data_report.md").read_text(encoding="utf-8")
    for path, reason in excluded.reason.items():
        assert f"| {path} |" in report and reason.split(":")[0] in report, path
    assert str(files["hidden"]) not in set(manifest.path) and str(files["text"]) not in set(manifest.path)


def test_awkward_images_are_used_and_copies_share_a_split(messy_run):
    _, files, out = messy_run
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False).set_index("path")
    for kind in ("cmyk", "sixteen_bit", "rgba", "palette", "rotated", "non_ascii"):
        assert manifest.loc[str(files[kind]), "status"] == "ok", kind
    trio = manifest.loc[[str(files[k]) for k in ("non_ascii", "exact_copy", "near_copy")]]
    assert trio.dup_group.nunique() == 1 and trio.split.nunique() == 1
    groups = manifest[manifest.status == "ok"].groupby("dup_group").split.nunique()
    assert (groups == 1).all(), "a duplicate group straddles splits"


def test_the_label_review_is_applied_and_reported(messy_run):
    data, files, out = messy_run
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False).set_index("path")
    excluded = manifest.loc[str(data / "vertical" / "vertical_03.jpg")]
    relabelled = manifest.loc[str(data / "horizontal" / "horizontal_05.jpg")]
    assert excluded.status == "excluded" and excluded.reason == "excluded in label review (two cells in one image)"
    assert relabelled.label == "vertical" and relabelled.review == "relabelled horizontal -> vertical (checked by eye)"
    report = (out / "docs" / "data_report.md").read_text(encoding="utf-8")
    assert "Label review: actions applied (2)" in report and "relabelled horizontal -> vertical" in report
    errors = pd.read_csv(out / "label_errors.csv")
    assert errors.label_probability.is_monotonic_increasing
    if relabelled.split in ("train", "val"):
        # Three smooth colour pictures filed under 'horizontal' are no stripes at all: the probe rightly doubts
        # them; among the stripes, the wrong relabel above is what it should doubt most.
        photos = {str(files[k]) for k in ("non_ascii", "exact_copy", "near_copy")}
        stripes = errors[~errors.path.isin(photos)]
        assert stripes.path.iloc[0] == str(data / "horizontal" / "horizontal_05.jpg"), stripes.path.head(3).tolist()
