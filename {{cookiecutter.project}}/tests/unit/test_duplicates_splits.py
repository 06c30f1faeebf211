"""Duplicate groups never straddle splits; splits are stratified, seeded and stable."""

import numpy as np
import pandas as pd
import pytest
from helpers.images import stripes, write_messy_dataset
from helpers.manifests import build_manifest

from {{ cookiecutter.package }}.acquisition.duplicates import drop_duplicates, near_pairs
from {{ cookiecutter.package }}.acquisition.splits import assign_splits, describe
from {{ cookiecutter.package }}.core.errors import DataError


def write_class(folder, count, seed, horizontal=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        stripes(horizontal, 32, rng).save(folder / f"{seed}_{i:03d}.png")


def row_split(manifest):
    return dict(zip(manifest.path, manifest.split))


def test_near_pairs_finds_exactly_the_pairs_within_the_distance():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    hashes[7] = hashes[3] ^ np.eye(32, dtype=np.uint8)[0] * 0b111  # 3 bits apart
    hashes[9] = hashes[3]
    bits = np.unpackbits(hashes, axis=1).astype(int)
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300) if np.abs(bits[i] - bits[j]).sum() <= 4}
    assert near_pairs(hashes, 4) == brute == {(3, 7), (3, 9), (7, 9)}
    assert near_pairs(hashes, 2) == {(3, 9)}


def test_exact_and_near_copies_group_and_share_a_split(tmp_path):
    files = write_messy_dataset(tmp_path)
    manifest = build_manifest(tmp_path).set_index("path")
    trio = [str(files[k]) for k in ("non_ascii", "exact_copy", "near_copy")]
    assert manifest.loc[trio, "dup_group"].nunique() == 1 and (manifest.loc[trio, "dup_count"] == 3).all()
    assert manifest.loc[trio, "split"].nunique() == 1
    others = manifest[(manifest.status == "ok") & ~manifest.index.isin(trio)]
    assert (others.dup_count == 1).all(), "no stripes image is grouped by accident"
    exact_only = build_manifest(tmp_path, duplicate_distance=-1).set_index("path")
    assert exact_only.loc[trio, "dup_count"].tolist() == [2, 2, 1]


def test_drop_duplicates_keeps_one_per_group_and_names_it(tmp_path):
    files = write_messy_dataset(tmp_path)
    dropped = drop_duplicates(build_manifest(tmp_path)).set_index("path")
    trio = dropped.loc[[str(files[k]) for k in ("non_ascii", "exact_copy", "near_copy")]]
    assert (trio.status == "ok").sum() == 1
    kept = trio.index[trio.status == "ok"][0]
    assert (trio[trio.status == "excluded"].reason == f"duplicate of {kept}").all()


def test_splits_are_stratified_seeded_and_stable_when_images_are_added(tmp_path):
    write_class(tmp_path / "a", 150, seed=1)
    write_class(tmp_path / "b", 80, seed=2, horizontal=False)
    first = build_manifest(tmp_path, 0.2, 0.3, seed=0)
    assert row_split(first) == row_split(build_manifest(tmp_path, 0.2, 0.3, seed=0))
    assert row_split(first) != row_split(build_manifest(tmp_path, 0.2, 0.3, seed=1))
    shares = first.groupby("label").split.value_counts(normalize=True).unstack()
    assert np.allclose(shares["test"], 0.3, atol=0.12) and np.allclose(shares["val"], 0.2, atol=0.12)
    write_class(tmp_path / "a", 40, seed=3)
    write_class(tmp_path / "c", 30, seed=4, horizontal=False)
    grown = row_split(build_manifest(tmp_path, 0.2, 0.3, seed=0))
    assert len(grown) == 150 + 80 + 40 + 30
    assert {p: grown[p] for p in row_split(first)} == row_split(first), "existing images kept their split"


def frame(rows):
    """Manifest rows (path, label, dup_group, given_split) that are all usable."""
    return pd.DataFrame(rows, columns=["path", "label", "dup_group", "given_split"]).assign(status="ok", reason="")


def test_given_splits_are_kept_and_val_becomes_test_when_there_is_no_test():
    rows = [(f"{s}/{c}/{i}", c, f"{s}{c}{i}", s) for s in ("train", "val") for c in "xy" for i in range(20)]
    manifest = assign_splits(frame(rows), 0.15, 0.25, seed=0)
    given_val = manifest[manifest.given_split == "val"]
    assert (given_val.split == "test").all()
    carved = manifest[manifest.given_split == "train"].split.value_counts()
    assert set(carved.index) == {"train", "val"} and carved["val"] >= 2
    with_test = frame(rows + [(f"test/{c}/{i}", c, f"t{c}{i}", "test") for c in "xy" for i in range(5)])
    kept = assign_splits(with_test, 0.15, 0.25, seed=0)
    assert (kept.split == kept.given_split).all(), "train, val and test given: nothing is carved or moved"


def test_the_split_rule_names_only_the_splits_it_carved():
    """The data report's rule: a split the data came with is not said to be drawn."""
    rows = [(f"{c}/{i}", c, f"{c}{i}", "") for c in "xy" for i in range(20)]
    none_given = describe(frame(rows), 0.15, 0.25, seed=0)
    assert "below 0.25 it goes to test, below 0.4 to validation, else to training" in none_given, none_given
    given = [(p, c, g, "test" if p.endswith(("/0", "/1")) else "train") for p, c, g, _ in rows]
    test_given = describe(frame(given), 0.15, 0.25, seed=0)
    assert "to test" not in test_given and "below 0.2 it goes to validation, else to training" in test_given
    assert "came without a split or in training" in test_given, test_given
    only_val = describe(frame([(p, c, g, s.replace("test", "val")) for p, c, g, s in given]), 0.15, 0.25, seed=0)
    assert "the given validation split is the held-out test" in only_val and "to test" not in only_val, only_val
    every = frame(given + [(f"v/{c}", c, f"v{c}", "val") for c in "xy"])
    assert "Nothing is carved" in describe(every, 0.15, 0.25, seed=0)


def test_a_duplicate_across_given_splits_stays_held_out_and_the_copy_is_excluded():
    rows = [(f"train/x/{i}", "x", f"g{i}", "train") for i in range(10)]
    rows += [(f"test/x/{i}", "x", f"h{i}", "test") for i in range(3)]
    rows[0] = ("train/x/0", "x", "h0", "train")  # the same picture as test/x/0
    manifest = assign_splits(frame(rows), 0.2, 0.25, seed=0).set_index("path")
    assert manifest.loc["test/x/0", ["split", "status"]].tolist() == ["test", "ok"]
    assert manifest.loc["train/x/0", "status"] == "excluded"
    assert "duplicate of an image in the test split" in manifest.loc["train/x/0", "reason"]


def test_every_class_gets_every_split_and_a_tiny_class_is_named():
    rows = [(f"a/{i}", "a", f"a{i}", "") for i in range(40)] + [(f"b/{i}", "b", f"b{i}", "") for i in range(3)]
    for seed in range(10):
        manifest = assign_splits(frame(rows), 0.15, 0.25, seed=seed)
        assert set(manifest[manifest.label == "b"].split) == {"train", "val", "test"}, seed
    rows += [(f"c/{i}", "c", "c-all-copies", "") for i in range(5)]
    with pytest.raises(DataError, match=r"Class 'c' has 5 usable image\(s\) in 1 distinct group"):
        assign_splits(frame(rows), 0.15, 0.25)


def test_a_folder_split_into_train_and_val_is_honoured(tmp_path):
    for label, horizontal in (("across", True), ("down", False)):
        write_class(tmp_path / "train" / label, 30, seed=10 + horizontal, horizontal=horizontal)
        write_class(tmp_path / "val" / label, 6, seed=20 + horizontal, horizontal=horizontal)
    manifest = build_manifest(tmp_path, 0.15, 0.25)
    from_val = manifest[manifest.path.str.contains("/val/")]
    from_train = manifest[manifest.path.str.contains("/train/")]
    assert (from_val.split == "test").all(), "with no test/ folder, the given val/ is the held-out test"
    assert set(from_train.split) == {"train", "val"}, "validation is carved from train/"
    assert 0.1 < (from_train.split == "val").mean() < 0.35
