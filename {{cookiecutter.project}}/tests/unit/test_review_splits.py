"""The label review covers every split, each image judged by a probe that never saw its label, and ranks by the
chosen ranker. Real stripes through the real featurizer (bundled efficientnet_lite0 at 64 px)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from helpers.images import write_stripes_dataset
from helpers.manifests import build_manifest

from {{ cookiecutter.package }}.acquisition.review import likely_label_errors
from {{ cookiecutter.package }}.acquisition.steps import find_label_errors
from {{ cookiecutter.package }}.core.config import ReviewConfig
from {{ cookiecutter.package }}.core.errors import ConfigError
from {{ cookiecutter.package }}.core.run_folder import RunFolder

OTHER = {"horizontal": "vertical", "vertical": "horizontal"}


@pytest.fixture(scope="module")
def stripes(tmp_path_factory):
    """40 stripes acquired (train, val and test), a run folder and a review config sharing one feature cache."""
    root = write_stripes_dataset(tmp_path_factory.mktemp("stripes"), per_class=20)
    manifest = build_manifest(root, val_fraction=0.2, test_fraction=0.3)
    manifest = manifest[manifest.status == "ok"].reset_index(drop=True)
    run = RunFolder.open(tmp_path_factory.mktemp("run"))
    cfg = ReviewConfig(backbone="efficientnet_lite0", resolution=64, folds=3, feature_cache=str(run.root / "cache"))
    return manifest, run, cfg


def relabelled(manifest: pd.DataFrame, paths) -> pd.DataFrame:
    changed = manifest.copy()
    chosen = changed.path.isin(list(paths))
    changed.loc[chosen, "label"] = changed.loc[chosen, "label"].map(OTHER)
    return changed


@pytest.mark.parametrize("ranker", ["probability", "cleanlab"])
def test_a_wrong_test_label_moves_only_that_image_and_no_train_or_val_probability(stripes, ranker):
    manifest, run, cfg = stripes
    cfg = replace(cfg, ranker=ranker)
    before = find_label_errors(cfg, run, manifest)
    assert sorted(before.path) == sorted(manifest.path), "every image of every split is reviewed"
    assert set(before.split) == {"train", "val", "test"}
    test = before[before.split == "test"]
    surest = test.path[test.label_probability.idxmax()]  # the test image the probe is surest of: now labelled wrong

    after = find_label_errors(cfg, run, relabelled(manifest, [surest]))
    old = before.set_index("path")
    new = after.set_index("path").loc[old.index]
    others = old.index != surest
    # no probe saw the test label: every other image keeps its probability, and train and val their flags and order
    pd.testing.assert_series_equal(new.label_probability[others], old.label_probability[others])
    fitted = (old.split != "test").to_numpy()
    pd.testing.assert_series_equal(new.flagged[fitted], old.flagged[fitted])
    assert after.path[after.split != "test"].tolist() == before.path[before.split != "test"].tolist()
    if ranker == "probability":  # cleanlab's flags in test follow its test labels; the probabilities do not
        assert [p for p in after.path if p != surest] == [p for p in before.path if p != surest]
    # the relabelled image: the probability of its new label is what its old one lacked, and it leads the list
    assert new.label_probability[surest] == pytest.approx(1 - old.label_probability[surest], abs=2e-4)
    assert old.label_probability[surest] > 0.75 and new.flagged[surest]
    assert after.path.iloc[0] == surest and before.path.tolist().index(surest) > len(before) // 2


def test_both_rankers_rank_the_same_probabilities_each_by_its_own_rule(stripes):
    manifest, run, cfg = stripes
    train = manifest[manifest.split == "train"].path
    flipped = relabelled(manifest, train.iloc[:3])  # three wrong training labels
    by_probability = find_label_errors(replace(cfg, ranker="probability"), run, flipped)
    by_cleanlab = find_label_errors(replace(cfg, ranker="cleanlab"), run, flipped)
    assert (run.root / "label_errors.csv").is_file()
    a, b = by_probability.set_index("path"), by_cleanlab.set_index("path").loc[by_probability.path]
    pd.testing.assert_series_equal(a.label_probability, b.label_probability)

    assert by_probability.label_probability.is_monotonic_increasing
    assert (by_probability.flagged == (by_probability.suggested_label != by_probability.label)).all()

    # cleanlab: its issues first (each part by probability), found apart in train + val and in test
    first = by_cleanlab.flagged.to_numpy()
    assert first[: first.sum()].all() and not first[first.sum() :].any()
    for part in (by_cleanlab[by_cleanlab.flagged], by_cleanlab[~by_cleanlab.flagged]):
        assert part.label_probability.is_monotonic_increasing
    classes = sorted(OTHER)
    for pool in (by_cleanlab[by_cleanlab.split != "test"], by_cleanlab[by_cleanlab.split == "test"]):
        y = np.searchsorted(classes, pool.label)
        given = pool.label_probability.to_numpy()
        probabilities = np.where(y[:, None] == [0, 1], given[:, None], 1 - given[:, None])
        expected = find_label_issues(y, probabilities / probabilities.sum(1, keepdims=True), n_jobs=1)
        np.testing.assert_array_equal(pool.flagged.to_numpy(), expected)
    for ranked in (by_probability, by_cleanlab):
        assert set(train.iloc[:3]) <= set(ranked.path.head(6)), "the wrong training labels lead either ranking"


def test_the_rankers_differ_where_a_class_is_doubted_throughout():
    """The probe doubts every 'b' (about 0.3 for its own label): 'probability' puts the weakest 'b' first, though no
    image is more likely an 'a'; cleanlab, with a threshold per class, puts first the 'a' the probe calls a 'b'."""
    labels = np.array(["a"] * 40 + ["b"] * 10)
    p_b = np.concatenate([np.full(39, 0.05), [0.6], np.linspace(0.25, 0.35, 10)])  # row 39: an 'a' that looks 'b'
    probabilities = np.stack([1 - p_b, p_b], axis=1)
    rows = pd.DataFrame({"path": [f"{i}.png" for i in range(50)], "label": labels, "split": "train"})
    by_probability = likely_label_errors(rows, probabilities, ["a", "b"], "probability")
    by_cleanlab = likely_label_errors(rows, probabilities, ["a", "b"], "cleanlab")
    assert by_probability.path.iloc[0] == "40.png" and by_probability.flagged.sum() == 11
    assert by_cleanlab.path.iloc[0] == "39.png" and by_cleanlab.flagged.sum() == 1


def test_cleanlab_judges_the_test_split_apart_so_no_test_label_moves_a_training_flag():
    """Image 40, an 'a' the probe leans 'b' on (0.6), is no confident 'b' beside the training 'b's (0.9); pooled with
    test images labelled 'b' at 0.2 it would be, and its flag would follow labels no training step may see."""
    p_b = np.concatenate([np.full(20, 0.1), np.full(20, 0.9), [0.6], np.full(20, 0.2)])
    probabilities = np.stack([1 - p_b, p_b], axis=1)
    flags = []
    for test_labels in (["a"] * 19 + ["b"], ["b"] * 19 + ["a"]):
        labels = ["a"] * 20 + ["b"] * 20 + ["a"] + test_labels
        split = ["train"] * 41 + ["test"] * 20
        rows = pd.DataFrame({"path": [f"{i}.png" for i in range(61)], "label": labels, "split": split})
        ranked = likely_label_errors(rows, probabilities, ["a", "b"], "cleanlab").set_index("path").loc[rows.path]
        flags.append(ranked.flagged.to_numpy())
    np.testing.assert_array_equal(flags[0][:41], flags[1][:41])
    assert not flags[0][40]
    assert flags[1][41:].sum() > 10, "with 19 'b's the probe calls 'a', the test split's own issues are found"


def test_a_split_of_one_class_is_flagged_where_the_probe_disagrees():
    """cleanlab needs two classes: a test split holding one falls back to the probe's likeliest class."""
    rows = pd.DataFrame({"path": ["0", "1", "2", "3", "4"], "label": ["a", "b", "a", "a", "a"]})
    rows["split"] = ["train", "train", "test", "test", "test"]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    ranked = likely_label_errors(rows, probabilities, ["a", "b"], "cleanlab").set_index("path")
    assert ranked.flagged.to_dict() == {"0": False, "1": False, "2": False, "3": True, "4": False}
    assert ranked.index[0] == "3"


def test_an_unknown_ranker_is_refused_with_the_choices_named():
    with pytest.raises(ConfigError, match="Invalid REVIEW_RANKER 'confident'. Only probability, cleanlab"):
        ReviewConfig(ranker="confident")
    with pytest.raises(ValueError, match="Only probability, cleanlab"):
        likely_label_errors(pd.DataFrame({"path": [], "label": []}), np.zeros((0, 2)), ["a", "b"], "confident")
