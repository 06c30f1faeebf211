"""Train / validation / test: by class, by duplicate group, seeded, and stable.

Each duplicate group draws a number in [0, 1) from a hash of the seed and the group;
the number alone decides its split. So a re-run gives the same split, adding images
never moves the ones already there, and copies of one image always share a split.
Splits given by the data (split folders or a CSV ``split`` column) are honoured.
"""

import hashlib

import pandas as pd

from ..core.errors import DataError

SPLITS = ("train", "val", "test")
HELD_OUT_FIRST = ("test", "val", "train")


def unit_interval(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 16**13


def assign_splits(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int = 0) -> pd.DataFrame:
    """Fill ``split`` for the usable rows (``dup_group`` must be set, see ``duplicates``).

    Given splits: with no given ``test``, a given ``val`` becomes the held-out test and
    validation is carved from train. A duplicate group found in two given splits stays
    in the most held-out one; its other copies are excluded as leaks.
    """
    manifest = manifest.copy()
    manifest["split"] = ""
    given = manifest.get("given_split", pd.Series("", index=manifest.index)).where(manifest.status == "ok", "")
    if not (given == "test").any():
        given = given.replace("val", "test")
    manifest = _exclude_leaks(manifest, given)
    usable = manifest.status == "ok"
    manifest.loc[usable & given.isin(["val", "test"]), "split"] = given
    pool = usable & given.isin(["", "train"]) & (manifest.split == "")
    test_share = 0.0 if (given == "test").any() else test_fraction
    val_share = 0.0 if (given == "val").any() else val_fraction / (1 - test_fraction + test_share)
    draw = manifest.loc[pool, "dup_group"].map(lambda group: unit_interval(seed, group))
    manifest.loc[pool, "split"] = draw.map(
        lambda u: "test" if u < test_share else "val" if u < test_share + val_share else "train"
    )
    carved = [s for s, share in (("test", test_share), ("val", val_share)) if share > 0]
    return _every_class_in_every_split(manifest, draw, carved)


def _exclude_leaks(manifest: pd.DataFrame, given: pd.Series) -> pd.DataFrame:
    """Copies of an image given to two splits: keep those in the most held-out split.

    Rows without a given split join their group's held-out split (``given`` is updated)."""
    usable = manifest[(manifest.status == "ok") & (given != "")]
    rank = given[usable.index].map(HELD_OUT_FIRST.index)
    group_rank = rank.groupby(usable.dup_group).min()
    for i in rank.index[rank != usable.dup_group.map(group_rank)]:
        kept_in = HELD_OUT_FIRST[group_rank[manifest.at[i, "dup_group"]]]
        manifest.loc[i, ["status", "reason"]] = [
            "excluded",
            f"duplicate of an image in the {kept_in} split (left out to avoid leakage)",
        ]
    follow = manifest.index[(manifest.status == "ok") & (given == "")]
    joined = manifest.loc[follow, "dup_group"].map(group_rank).map(lambda r: HELD_OUT_FIRST[int(r)] if r == r else "")
    given.loc[follow] = joined.where(joined.isin(["val", "test"]), "")
    return manifest


def _every_class_in_every_split(manifest: pd.DataFrame, draw: pd.Series, carved: list[str]) -> pd.DataFrame:
    """A small class may draw no group for a split: move a group there from its fullest split."""
    usable = manifest[manifest.status == "ok"]
    for label, rows in usable.groupby("label", sort=True):
        pooled = rows.index.intersection(draw.index)
        if pooled.empty:
            continue
        group_draw = draw[pooled].groupby(rows.loc[pooled, "dup_group"]).first()
        if len(group_draw) < len(carved) + 1:
            raise DataError(
                f"Class {label!r} has {len(rows)} usable image(s) in {len(group_draw)} distinct group(s) of "
                f"duplicates; splitting it needs at least {len(carved) + 1} (one per split). Add images of "
                f"{label!r}, lower DUPLICATE_DISTANCE, or remove the class folder."
            )
        for split in carved:
            group_split = manifest.loc[pooled].groupby("dup_group").split.first()
            if (group_split == split).any():
                continue
            sizes = group_split.value_counts()
            donor = sizes.index[0] if sizes.iloc[0] > 1 else None
            if donor is not None:
                move = group_draw[group_split[group_split == donor].index].idxmin()
                manifest.loc[(manifest.dup_group == move) & (manifest.status == "ok"), "split"] = split
    return manifest


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    usable = manifest[manifest.status == "ok"]
    counts = pd.crosstab(usable.label, usable.split, margins=True, margins_name="all")
    return counts.reindex(columns=[c for c in (*SPLITS, "all") if c in counts.columns])


def describe(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> str:
    """The split rule in words, for the data report."""
    given = manifest.get("given_split", pd.Series(dtype=str))
    given_splits = sorted(set(given[given != ""]))
    rule = (
        f"Seed {seed}. Each duplicate group draws a number in [0, 1) from a hash of the seed and the group; "
        f"below {test_fraction:g} it goes to test, below {test_fraction + val_fraction:g} to validation, else to "
        "training. Re-runs give the same split and new images never move existing ones."
    )
    if given_splits:
        rule = (
            f"The data came split ({', '.join(given_splits)}); those splits are kept. "
            + (
                "With no test split given, the given validation split is the held-out test and validation is "
                "carved from training. "
                if "test" not in given_splits
                else ""
            )
            + rule
        )
    return rule
