"""One picture filed under two labels: listed first, counted, and settled by CONFLICTING_LABELS, inside training and
across a given train/test split."""

import contextlib
import io
import shutil
import tempfile

import pandas as pd
import pytest
from helpers.images import write_stripes_dataset

from {{ cookiecutter.package }}.acquisition.duplicates import conflicting_groups, conflicting_images, resolve_conflicts
from {{ cookiecutter.package }}.acquisition.report import write_data_report
from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core.config import ConfigError, DataConfig
from {{ cookiecutter.package }}.core.results import AcquisitionResults
from {{ cookiecutter.package }}.core.run_folder import RunFolder

LEAK = "duplicate of an image in the test split"


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
    """A folder given as train/ and test/ (stripes), with copies of four pictures filed under both labels:
    a tied pair and a 2-to-1 trio inside train/, a tied pair and a 2-to-1 trio across train/ and test/;
    plus one plain copy under a single label. Returns the folder and the copies by name."""
    root = tmp_path_factory.mktemp("split folder")
    write_stripes_dataset(root / "train", per_class=10, seed=1)
    write_stripes_dataset(root / "test", per_class=4, seed=2)
    train, test = root / "train", root / "test"
    copies = {
        "pair_in_train": [train / "horizontal/horizontal_00.jpg", train / "vertical/same_as_h00.jpg"],
        "trio_in_train": [
            train / "vertical/vertical_01.png",
            train / "vertical/again_v01.png",
            train / "horizontal/same_as_v01.png",
        ],
        "pair_across": [test / "horizontal/horizontal_00.jpg", train / "vertical/same_as_test_h00.jpg"],
        "trio_across": [
            train / "horizontal/horizontal_02.jpg",
            train / "horizontal/again_h02.jpg",
            test / "vertical/same_as_train_h02.jpg",
        ],
        "plain_copy": [train / "horizontal/horizontal_03.png", train / "horizontal/again_h03.png"],
    }
    for original, *others in copies.values():
        for copy in others:
            shutil.copyfile(original, copy)
    return root, {name: [str(p) for p in paths] for name, paths in copies.items()}


def acquire_into(location, **settings):
    """01_acquire_data on ``location`` in a fresh run folder: the run, its whole manifest (by path) and what it
    printed."""
    run = RunFolder.open(tempfile.mkdtemp(prefix="run-"))
    cfg = DataConfig(data_dir=str(location), labels_review=str(run.root / "none.csv"), workers=1, **settings)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        acquire(cfg, run)
    return run, run.read_manifest(usable_only=False).set_index("path"), printed.getvalue()


@pytest.fixture(scope="module")
def runs(split_folder):
    """The folder acquired once under each policy: policy -> (run, manifest, what it printed)."""
    root, _ = split_folder
    return {policy: acquire_into(root, conflicting_labels=policy) for policy in ("majority", "exclude", "keep")}


def rows(manifest, paths):
    return manifest.loc[paths]


def excluded_for_conflict(rows):
    return (rows.status == "excluded") & rows.reason.str.startswith("conflicting labels")


def test_the_default_is_majority_and_a_bad_choice_names_the_parameter():
    assert DataConfig(sample="any").conflicting_labels == "majority"
    with pytest.raises(ConfigError, match="Invalid CONFLICTING_LABELS 'drop'. Only majority, exclude, keep"):
        DataConfig(sample="any", conflicting_labels="drop")


def test_the_groups_are_found_whatever_the_policy(split_folder, runs):
    _, copies = split_folder
    for policy, (_, manifest, _) in runs.items():
        found = conflicting_groups(manifest.reset_index())
        expected = {manifest.at[copies[name][0], "dup_group"] for name in copies if name != "plain_copy"}
        assert set(found.index) == expected, policy
        plain = manifest.loc[copies["plain_copy"]]
        assert plain.dup_group.nunique() == 1 and plain.dup_group.iloc[0] not in found.index, policy
        assert (manifest.loc[[p for paths in copies.values() for p in paths]].dup_count > 1).all()


def test_majority_keeps_the_common_label_and_excludes_ties_inside_training(split_folder, runs):
    _, copies = split_folder
    manifest = runs["majority"][1]
    pair = rows(manifest, copies["pair_in_train"])
    assert excluded_for_conflict(pair).all() and (pair.split == "").all()
    assert pair.reason.str.contains("no label has a majority").all()
    trio = rows(manifest, copies["trio_in_train"])
    assert trio.status.tolist() == ["ok", "ok", "excluded"]
    assert excluded_for_conflict(trio).iloc[2] and "majority label vertical" in trio.reason.iloc[2]
    assert trio.split.iloc[0] == trio.split.iloc[1] and trio.split.iloc[0] in ("train", "val")


def test_majority_across_train_and_test_leaves_no_contradicting_copy_in_test(split_folder, runs):
    _, copies = split_folder
    manifest = runs["majority"][1]
    pair = rows(manifest, copies["pair_across"])
    assert excluded_for_conflict(pair).all(), "a tie across train/test: neither copy is trusted, in test or not"
    trio = rows(manifest, copies["trio_across"])
    assert excluded_for_conflict(trio).tolist() == [False, False, True], "the test copy under the minority label"
    assert trio.status.iloc[:2].eq("ok").all() and trio.split.iloc[0] == trio.split.iloc[1] != "test"
    usable = manifest[manifest.status == "ok"]
    assert (usable.groupby("dup_group").label.nunique() == 1).all(), "no usable group carries two labels"


def test_exclude_leaves_out_every_image_of_every_conflicting_group(split_folder, runs):
    _, copies = split_folder
    manifest = runs["exclude"][1]
    for name in ("pair_in_train", "trio_in_train", "pair_across", "trio_across"):
        assert excluded_for_conflict(rows(manifest, copies[name])).all(), name
    assert rows(manifest, copies["plain_copy"]).status.eq("ok").all(), "a copy under one label is no conflict"


def test_keep_keeps_them_and_only_the_leakage_rule_acts_across_splits(split_folder, runs):
    _, copies = split_folder
    manifest = runs["keep"][1]
    for name in ("pair_in_train", "trio_in_train"):
        kept = rows(manifest, copies[name])
        assert kept.status.eq("ok").all() and kept.split.nunique() == 1 and kept.split.iloc[0] in ("train", "val")
    for name, test_copy in (("pair_across", 0), ("trio_across", 2)):
        group = rows(manifest, copies[name])
        assert group.loc[copies[name][test_copy], ["status", "split"]].tolist() == ["ok", "test"], name
        train_copies = group.drop(index=copies[name][test_copy])
        assert (train_copies.status == "excluded").all() and train_copies.reason.str.contains(LEAK).all(), name
    # what the default avoids: a copy left in test under the label its own copies contradict
    assert manifest.at[copies["trio_across"][2], "label"] == "vertical"


def test_the_summary_line_and_the_results_count_the_conflicts(runs):
    for policy, settled in (("majority", 6), ("exclude", 10), ("keep", 0)):
        run, _, printed = runs[policy]
        assert (
            f"5 duplicate group(s) holding 12 images; 4 with conflicting labels ({settled} image(s) excluded, "
            f"CONFLICTING_LABELS={policy})" in printed
        ), printed
        results = run.load(AcquisitionResults)
        assert results.conflicting_groups == 4 and results.excluded.get("conflicting labels", 0) == settled
        assert f"CONFLICTING_LABELS={policy}" in results.duplicate_rule


def test_the_data_report_counts_them_and_lists_them_first(split_folder, runs):
    _, copies = split_folder
    for policy, (run, manifest, _) in runs.items():
        report = write_data_report(run, run.load(AcquisitionResults), manifest.reset_index()).read_text("utf-8")
        assert "## Conflicting labels (4)" in report, policy
        assert report.index("## Conflicting labels") < report.index("## Duplicate groups"), policy
        for name in ("pair_in_train", "trio_in_train", "pair_across", "trio_across"):
            assert all(f"| {path} |" in report for path in copies[name]), (policy, name)


def frame(rows):
    """Usable manifest rows (path, label, dup_group, split)."""
    return pd.DataFrame(rows, columns=["path", "label", "dup_group", "split"]).assign(
        status="ok", reason="", review="", dup_count=lambda f: f.groupby("dup_group").path.transform("size")
    )


def test_a_tie_among_the_top_labels_excludes_the_whole_group_even_with_a_third_label():
    rows = [(f"{label}/{i}", label, "g", "") for label, n in (("cat", 2), ("dog", 2), ("owl", 1)) for i in range(n)]
    settled = resolve_conflicts(frame(rows), "majority")
    assert (settled.status == "excluded").all()
    assert settled.reason.iloc[0] == (
        "conflicting labels: duplicate group g holds cat (2), dog (2), owl (1); no label has a majority, so the "
        "whole group is left out"
    )
    with pytest.raises(ValueError, match="CONFLICTING_LABELS"):
        resolve_conflicts(frame(rows), "vote")


def test_conflicting_groups_come_first_in_the_report_and_the_review_list(tmp_path):
    """Plain groups whose keys sort first still come after the conflicting ones."""
    rows = [("a/1", "a", "000000000000", "train"), ("a/2", "a", "000000000000", "train")]
    rows += [("a/3", "a", "111111111111", "test"), ("a/4", "a", "111111111111", "test")]
    rows += [("b/1", "b", "ffffffffffff", "train"), ("a/5", "a", "ffffffffffff", "train")]
    rows += [("b/2", "b", "eeeeeeeeeeee", "val"), ("a/6", "a", "eeeeeeeeeeee", "val")]
    rows += [("a/7", "a", "eeeeeeeeeeee", "val")]
    manifest = frame(rows)
    groups = conflicting_groups(manifest)
    assert groups.index.tolist() == ["eeeeeeeeeeee", "ffffffffffff"], "the biggest conflict first"
    assert groups.loc["eeeeeeeeeeee"].tolist() == [3, "a (2), b (1)", "a in val (2), b in val (1)", 0]
    assert conflicting_images(manifest).path.tolist() == ["a/6", "a/7", "b/2", "a/5", "b/1"]
    run = RunFolder.open(tmp_path / "run")
    acquired = AcquisitionResults("folder x", "", 9, 0, {}, ["a", "b"], {}, 4, 0, "none.csv", "rule", "dup rule")
    report = write_data_report(run, acquired, manifest).read_text("utf-8")
    duplicates = report[report.index("## Duplicate groups") :]
    order = [duplicates.index(f"| {group} |") for group in ("eeeeeeeeeeee", "ffffffffffff", "000000000000")]
    assert order == sorted(order), "conflicting groups head the duplicate table"
    assert "## Conflicting labels (2)" in report and "| eeeeeeeeeeee | 3 | a (2), b (1) |" in report
