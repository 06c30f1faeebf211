"""Images of one subject stay together: a manifest's group column or a pattern on the paths names the subject, and
no subject has images in two splits or in two folds of the label review. Generated subjects: several views each, far
enough apart that the near-duplicate hash never ties them, so only the groups can keep them together."""

import csv

import pandas as pd
import pytest
from helpers.images import write_subjects
from helpers.manifests import acquired_run

from {{ cookiecutter.package }}.acquisition.groups import join
from {{ cookiecutter.package }}.acquisition.report import write_data_report
from {{ cookiecutter.package }}.acquisition.review import review_folds
from {{ cookiecutter.package }}.acquisition.splits import GROUP_ACROSS_SPLITS, assign_splits, group_key
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.errors import ConfigError
from {{ cookiecutter.package }}.core.results import AcquisitionResults
from {{ cookiecutter.package }}.orchestration.cli import main


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    """8 subjects per class, 4 views each, and a CSV manifest of them with the subject in a ``group`` column and in
    two more columns acquisition does not read (a patient number and a misspelt split)."""
    root = tmp_path_factory.mktemp("subjects")
    rows = write_subjects(root)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "group", "patient_id", "spilt"])
        writer.writeheader()
        writer.writerows({**row, "patient_id": f"p-{row['group']}", "spilt": "train"} for row in rows)
    return manifest


def subject_of(manifest: pd.DataFrame) -> pd.Series:
    return manifest.path.str.extract(r"subject(\w\d\d)_view")[0]


def spread(manifest: pd.DataFrame, where: pd.Series) -> int:
    """How many subjects have images in more than one of ``where``'s values."""
    return int((where.groupby(subject_of(manifest)).nunique() > 1).sum())


def folds_of(manifest: pd.DataFrame) -> pd.Series:
    """Each train or validation image's held-out fold in the label review, as ``find_label_errors`` draws them."""
    rows = manifest[manifest.split.isin(["train", "val"])].reset_index(drop=True)
    fold = pd.Series(-1, index=rows.index)
    for k, (_, held_out) in enumerate(review_folds(rows.label.to_numpy(), group_key(rows).to_numpy(), folds=3)):
        fold[held_out] = k
    return rows.assign(fold=fold)


def test_without_groups_subjects_straddle_splits_and_folds_with_the_group_column_none_does(subjects):
    apart = acquired_run(subjects, group_column="").read_manifest()
    assert (apart.dup_count == 1).all(), "views of a subject must escape the near-duplicate hash"
    assert spread(apart, apart.split) > 0, "without groups, a subject's views are split image by image"
    assert spread(folds_of(apart), folds_of(apart).fold) > 0

    run = acquired_run(subjects)  # GROUP_COLUMN = "group", the default: used because the manifest has it
    together = run.read_manifest()
    assert (together.split_group == subject_of(together)).all()
    assert spread(together, together.split) == 0, "no subject has images in two splits"
    reviewed = folds_of(together)
    assert spread(reviewed, reviewed.fold) == 0, "no subject has images in two folds of the label review"
    assert reviewed.fold.nunique() == 3
    shares = together.groupby("label").split.value_counts(normalize=True).unstack()
    assert shares.loc["horizontal"].equals(shares.loc["vertical"]), "whole groups, dealt class by class alike"

    acquired = run.load(AcquisitionResults)
    assert acquired.groups == {"subjects": 16, "groups": 16, "cut_groups": 0, "cut_images": 0}
    report = write_data_report(run, acquired, run.read_manifest(usable_only=False)).read_text(encoding="utf-8")
    per_split = together.groupby("split").split_group.nunique()
    header = "| label | " + " | ".join(c for c in ("train", "val", "test") if c in per_split) + " | all |"
    assert header in report
    assert "| all | " + " | ".join(str(per_split[c]) for c in ("train", "val", "test")) + " | 16 |" in report
    assert "| h00 | 4 | horizontal (4) |" in report, "the largest groups are listed with their images"


def test_unused_columns_are_named_in_the_summary_and_the_report(subjects, capsys):
    run = acquired_run(subjects)
    printed = capsys.readouterr().out
    unused = run.load(AcquisitionResults).unused_columns
    assert list(unused) == ["patient_id", "spilt"]
    assert "set GROUP_COLUMN='patient_id'" in unused["patient_id"], "a repeating id column is suggested as groups"
    assert "did you mean 'split'?" in unused["spilt"]
    assert "column not used: `patient_id`: looks like a subject identifier (16 values over 64 images)" in printed
    report = write_data_report(run, run.load(AcquisitionResults), run.read_manifest(usable_only=False))
    assert "## Columns not used (2)" in report.read_text(encoding="utf-8")


def test_a_pattern_on_folder_names_groups_a_folder_of_class_folders(tmp_path):
    write_subjects(tmp_path, subjects=6, views=3, files="{label}/{group}/view{view}.png")
    manifest = acquired_run(tmp_path, group_pattern=r"^\w+/(?P<group>[hv]\d\d)/").read_manifest()
    folder = manifest.origin.str.split("/").str[1]
    assert (manifest.split_group == folder).all()
    assert (manifest.split.groupby(folder).nunique() == 1).all()
    alone = acquired_run(tmp_path).read_manifest()  # no pattern: each view a group of its own
    assert (alone.split.groupby(folder).nunique() > 1).any()


def frame(rows):
    """Usable manifest rows (path, label, group, given_split), each image its own duplicate group."""
    manifest = pd.DataFrame(rows, columns=["path", "label", "group", "given_split"])
    return manifest.assign(dup_group=manifest.path, split_group=manifest.group, status="ok", reason="")


def test_a_copy_shared_by_two_subjects_joins_them_and_ungrouped_images_keep_their_duplicate_group():
    rows = pd.DataFrame(
        [("1", "s2", "d1"), ("2", "s2", "d2"), ("3", "s1", "d3"), ("4", "s1", "d2"), ("5", "", "d5"), ("6", "", "d5")],
        columns=["path", "group", "dup_group"],
    ).assign(status="ok")
    joined = join(rows).split_group.tolist()
    assert joined == ["s1", "s1", "s1", "s1", "d5", "d5"], "s1 and s2 tied by the copy d2, named by the first"


def test_a_group_the_given_splits_cut_stays_whole_in_test_and_its_training_images_are_left_out():
    rows = [(f"{c}{s}/{v}", c, f"{c}{s}", "train") for c in "ab" for s in range(6) for v in range(3)]
    rows += [(f"{c}t{s}/{v}", c, f"{c}t{s}", "test") for c in "ab" for s in range(2) for v in range(3)]
    rows[0:2] = [("a0/0", "a", "a0", "test"), ("a0/1", "a", "a0", "test")]  # subject a0: 2 views in test, 1 in train
    rows.append(("a0/3", "a", "a0", ""))  # no split given: it joins its subject's held-out split
    manifest = assign_splits(frame(rows), 0.2, 0.25, seed=0).set_index("path")
    a0 = manifest[manifest.group == "a0"]
    assert a0.loc[a0.status == "ok", "split"].tolist() == ["test", "test", "test"]
    assert a0.loc["a0/2", "status"] == "excluded"
    assert a0.loc["a0/2", "reason"].startswith(f"{GROUP_ACROSS_SPLITS}: group a0 is kept in the test split")
    usable = manifest[manifest.status == "ok"]
    assert (usable.groupby("group").split.nunique() == 1).all()
    assert set(usable.split) == {"train", "val", "test"}, "validation is carved from train by whole groups"


def test_a_group_column_the_manifest_lacks_is_refused_up_front_with_its_columns(subjects, tmp_path, capsys):
    out = tmp_path / "run"
    command = ["pipeline", "--data-dir", str(subjects), "--profile", "smoke", "--out", str(out)]
    assert main([*command, "-p", "GROUP_COLUMN", "patient"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert f"GROUP_COLUMN='patient' is not a column of {subjects}; its columns are path, label, group, " in error
    assert not out.exists()
    with pytest.raises(ConfigError, match="for a folder, set GROUP_PATTERN"):
        DataConfig(data_dir=str(tmp_path), group_column="patient")
    with pytest.raises(ConfigError, match="needs a part named group"):
        DataConfig(data_dir=str(tmp_path), group_pattern=r"patient\d+")
    with pytest.raises(ConfigError, match="is not a regular expression"):
        DataConfig(data_dir=str(tmp_path), group_pattern="(?P<group>")


def test_a_manifest_read_back_with_an_empty_group_column_splits_by_its_duplicate_groups():
    """Its CSV holds ``split_group`` empty where no group was joined: each such row is its duplicate group, not
    one group of all the empty ones."""
    manifest = pd.DataFrame({"dup_group": ["a", "a", "b", "c"], "split_group": ["", None, "s1", ""]})
    assert group_key(manifest).tolist() == ["a", "a", "s1", "c"]
