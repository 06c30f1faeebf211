"""Train / validation / test: by class, by group, seeded, and stable.

The unit is the group (``split_group``, see ``groups``: a subject the data names, joined with its duplicates; without
groups from the data, the duplicate group), so copies of one image, and images of one subject, always share a split.
Without groups from the data, each group draws a number in [0, 1) from a hash of the seed and the group; the number
alone decides its split. So a re-run gives the same split and adding images never moves the ones already there.
With groups from the data (often a few subjects of many images each, where draws would leave the class shares far
off), whole groups are dealt out instead, largest first, each to the split where it brings every class's counts
closest to the asked fractions: the idea of scikit-learn's ``StratifiedGroupKFold``, with splits of unequal size.
Groups of one size go in the order of their draws, so the seed still decides.
Splits given by the data (split folders or a CSV ``split`` column) are honoured; a group given to two splits stays
in the most held-out one (see ``_exclude_leaks``).
"""

import hashlib

import numpy as np
import pandas as pd

from ..core.errors import DataError
from . import groups

SPLITS = ("train", "val", "test")
HELD_OUT_FIRST = ("test", "val", "train")
GROUP_ACROSS_SPLITS = groups.GROUP_ACROSS_SPLITS


def unit_interval(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 16**13


def group_key(manifest: pd.DataFrame) -> pd.Series:
    """The unit the splits and the label review's folds deal out: ``split_group`` where acquisition set it (see
    ``groups.join``), else the duplicate group (a manifest read back from its CSV holds the column, empty)."""
    if "split_group" not in manifest:
        return manifest.dup_group
    joined = manifest.split_group.fillna("").astype(str)
    return joined.where(joined != "", manifest.dup_group)


def assign_splits(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int = 0) -> pd.DataFrame:
    """Fill ``split`` for the usable rows (``dup_group`` must be set, see ``duplicates``; ``split_group`` may be).

    Given splits: with no given ``test``, a given ``val`` becomes the held-out test and
    validation is carved from train. A group found in two given splits stays in the most
    held-out one; its images given to the others are excluded as leaks.
    """
    manifest = manifest.copy()
    manifest["split"] = ""
    key = group_key(manifest)
    given = manifest.get("given_split", pd.Series("", index=manifest.index)).where(manifest.status == "ok", "")
    given = held_out_given(given)
    manifest = _exclude_leaks(manifest, given, key)
    usable = manifest.status == "ok"
    manifest.loc[usable & given.isin(["val", "test"]), "split"] = given
    pool = usable & given.isin(["", "train"]) & (manifest.split == "")
    test_share, val_share = carved_shares(given, val_fraction, test_fraction)
    draw = key[pool].map(lambda group: unit_interval(seed, group))
    if groups.given(manifest[pool]):
        manifest.loc[pool, "split"] = _deal(
            manifest.label[pool], key[pool], draw, {"test": test_share, "val": val_share}
        )
    else:
        manifest.loc[pool, "split"] = draw.map(
            lambda u: "test" if u < test_share else "val" if u < test_share + val_share else "train"
        )
    carved = [s for s, share in (("test", test_share), ("val", val_share)) if share > 0]
    return _every_class_in_every_split(manifest, key, draw, carved)


def held_out_given(given: pd.Series) -> pd.Series:
    """The given splits as they are used: with no given test, a given validation split is the held-out test."""
    return given if (given == "test").any() else given.replace("val", "test")


def carved_shares(given: pd.Series, val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """The test and validation shares drawn from the images given no split (or given to train): none for a split
    the data came with. ``given`` is after a lone given ``val`` became the test split."""
    test_share = 0.0 if (given == "test").any() else test_fraction
    val_share = 0.0 if (given == "val").any() else val_fraction / (1 - test_fraction + test_share)
    return test_share, val_share


def _deal(labels: pd.Series, keys: pd.Series, draw: pd.Series, held_out: dict[str, float]) -> pd.Series:
    """Each row's split: whole groups, largest first (then by draw), each to the split whose counts per class it
    brings closest to their targets (squared shortfall, each class weighed by its size)."""
    shares = {"train": 1 - sum(held_out.values()), **{s: f for s, f in held_out.items() if f > 0}}
    per_group = pd.crosstab(keys, labels)
    order = (
        pd.DataFrame({"size": per_group.sum(axis=1), "draw": draw.groupby(keys).first()})
        .sort_values(["size", "draw"], ascending=[False, True])
        .index
    )
    counts = per_group.loc[order].to_numpy(float)
    totals = counts.sum(axis=0)
    targets = np.outer(list(shares.values()), totals)
    filled = np.zeros_like(targets)
    chosen = np.empty(len(order), dtype=int)
    for i, group in enumerate(counts):
        chosen[i] = int(np.argmin((group * (2 * (filled - targets) + group) / totals).sum(axis=1)))
        filled[chosen[i]] += group
    return keys.map(pd.Series(np.asarray(list(shares))[chosen], index=order))


def _exclude_leaks(manifest: pd.DataFrame, given: pd.Series, key: pd.Series) -> pd.DataFrame:
    """A group given to two splits: keep its images in the most held-out split, exclude the others (a copy of a
    held-out image, or another image of a held-out subject, would be scored as seen).

    Rows without a given split join their group's held-out split (``given`` is updated)."""
    usable = manifest[(manifest.status == "ok") & (given != "")]
    rank = given[usable.index].map(HELD_OUT_FIRST.index)
    group_rank = rank.groupby(key[usable.index]).min()
    copy_rank = rank.groupby(usable.dup_group).min()
    for i in rank.index[rank != key[usable.index].map(group_rank)]:
        kept_in = HELD_OUT_FIRST[group_rank[key[i]]]
        if copy_rank[manifest.at[i, "dup_group"]] < rank[i]:
            reason = f"duplicate of an image in the {kept_in} split (left out to avoid leakage)"
        else:
            reason = (
                f"{GROUP_ACROSS_SPLITS}: group {key[i]} is kept in the {kept_in} split, where it was given too "
                "(left out so that no subject is on both sides)"
            )
        manifest.loc[i, ["status", "reason"]] = ["excluded", reason]
    follow = manifest.index[(manifest.status == "ok") & (given == "")]
    joined = key[follow].map(group_rank).map(lambda r: HELD_OUT_FIRST[int(r)] if r == r else "")
    given.loc[follow] = joined.where(joined.isin(["val", "test"]), "")
    return manifest


def _every_class_in_every_split(
    manifest: pd.DataFrame, key: pd.Series, draw: pd.Series, carved: list[str]
) -> pd.DataFrame:
    """A small class may draw no group for a split: move a group there from its fullest split."""
    usable = manifest[manifest.status == "ok"]
    for label, rows in usable.groupby("label", sort=True):
        pooled = rows.index.intersection(draw.index)
        if pooled.empty:
            continue
        group_draw = draw[pooled].groupby(key[pooled]).first()
        if len(group_draw) < len(carved) + 1:
            kind = "groups (subjects and their copies)" if groups.given(rows) else "group(s) of duplicates"
            raise DataError(
                f"Class {label!r} has {len(rows)} usable image(s) in {len(group_draw)} distinct {kind}; "
                f"splitting it needs at least {len(carved) + 1} (one per split). Add images of "
                f"{label!r}, lower DUPLICATE_DISTANCE, or remove the class folder."
            )
        for split in carved:
            group_split = manifest.split[pooled].groupby(key[pooled]).first()
            if (group_split == split).any():
                continue
            sizes = group_split.value_counts()
            donor = sizes.index[0] if sizes.iloc[0] > 1 else None
            if donor is not None:
                move = group_draw[group_split[group_split == donor].index].idxmin()
                manifest.loc[(key == move) & (manifest.status == "ok"), "split"] = split
    return manifest


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    usable = manifest[manifest.status == "ok"]
    counts = pd.crosstab(usable.label, usable.split, margins=True, margins_name="all")
    return counts.reindex(columns=[c for c in (*SPLITS, "all") if c in counts.columns])


def describe(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> str:
    """The split rule in words, for the data report: the shares it carved, not those of a split that was given."""
    given = manifest.get("given_split", pd.Series("", index=manifest.index)).fillna("")
    given_splits = sorted(set(given[given != ""]))
    test_share, val_share = carved_shares(held_out_given(given), val_fraction, test_fraction)
    carved = {"test": test_share, "validation": val_share}
    images = "the images that came without a split or in training" if given_splits else "the images"
    if not test_share and not val_share:
        rule = "Nothing is carved: the data came with every split."
    elif groups.given(manifest):
        targets = ", ".join(f"{share:.3g} in {name}" for name, share in carved.items() if share)
        rule = (
            f"Seed {seed}. Whole groups of {images} are dealt out, largest first (groups of one size in the order of "
            f"a hash of the seed and the group), each to the split that brings every class closest to {targets} "
            "and the rest in training. Re-runs give the same split; added images may move other groups."
        )
    else:
        drawn = [name for name, share in carved.items() if share]
        bounds = np.cumsum([carved[name] for name in drawn])
        below = [f"below {b:.3g} {'it goes ' * (i == 0)}to {name}" for i, (b, name) in enumerate(zip(bounds, drawn))]
        rule = (
            f"Seed {seed}. Each duplicate group of {images} draws a number in [0, 1) from a hash of the seed and "
            f"the group; {', '.join(below)}, else to training. Re-runs give the same split and new images never "
            "move existing ones."
        )
    if given_splits:
        cut = int(manifest.get("reason", pd.Series(dtype=str)).str.startswith(GROUP_ACROSS_SPLITS).sum())
        rule = (
            f"The data came split ({', '.join(given_splits)}); those splits are kept. "
            + (
                "With no test split given, the given validation split is the held-out test and validation is "
                "carved from training. "
                if "test" not in given_splits
                else ""
            )
            + (
                "A group given to two splits stays whole in the most held-out of them (test, then validation); its "
                f"images given to the other are left out ({cut} image(s) here). "
                if groups.given(manifest)
                else ""
            )
            + rule
        )
    return rule
