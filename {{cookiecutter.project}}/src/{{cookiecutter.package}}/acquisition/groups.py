"""Groups of images that show one subject (a patient, a lesion, a session): each group sits in one split and, in the
label review, in one fold.

A subject's group comes from the data: a CSV manifest's column (``GROUP_COLUMN``) or a pattern on each image's path
(``GROUP_PATTERN``, a regular expression with a part named ``group``). Groups join the duplicate groups: an image
that is a copy of another subject's image ties the two subjects (union-find), so ``split_group``, the unit the splits
and the folds deal out, holds every image of the subjects it ties, and their copies. Without groups from the data,
``split_group`` is the duplicate group, and the splits are what they were without this module.
"""

import re

import pandas as pd

from .duplicates import UnionFind

GROUP_ACROSS_SPLITS = "group given to two splits"  # how the reason of an image left out for that starts (``splits``)


def from_pattern(manifest: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """``group`` filled from ``pattern``'s part named group, searched in each path as the source wrote it (a
    group the manifest gives wins). A path it does not match keeps no group: an image of its own."""
    manifest = manifest.copy()
    if "group" not in manifest:
        manifest["group"] = ""
    manifest["group"] = manifest.group.fillna("").astype(str)
    if not pattern:
        return manifest
    compiled = re.compile(pattern)
    where = manifest.origin.where(manifest.origin != "", manifest.path) if "origin" in manifest else manifest.path
    found = where.map(lambda text: _match(compiled, text))
    manifest["group"] = manifest.group.where(manifest.group != "", found)
    return manifest


def _match(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(str(text).replace("\\", "/"))
    return (match.group("group") or "") if match else ""


def join(manifest: pd.DataFrame) -> pd.DataFrame:
    """``split_group`` for the usable rows: duplicate groups and subject groups joined. A joined group is named by
    its first subject in name order (a name that does not change from run to run), else by its duplicate group."""
    manifest = manifest.copy()
    if "group" not in manifest:
        manifest["group"] = ""
    manifest["split_group"] = ""
    usable = manifest.index[manifest.status == "ok"]
    if len(usable) == 0:
        return manifest
    rows = manifest.loc[usable].reset_index(drop=True)  # index labels are positions
    tied = UnionFind(len(rows))
    for keys in (rows.dup_group, rows.group[rows.group != ""]):
        for first, *others in keys.groupby(keys).groups.values():
            for other in others:
                tied.union(first, other)
    roots = pd.Series([tied.find(i) for i in range(len(rows))])
    subject = rows.group.where(rows.group != "").groupby(roots).transform("min")
    duplicate = rows.dup_group.groupby(roots).transform("min")
    manifest.loc[usable, "split_group"] = subject.fillna(duplicate).to_numpy()
    return manifest


def given(manifest: pd.DataFrame) -> bool:
    """Whether the data gave any group."""
    return "group" in manifest and bool((manifest.group.fillna("") != "").any())


def summary(manifest: pd.DataFrame) -> dict[str, int]:
    """Subjects from the data, groups after joining their copies, and groups the given splits cut (with the images
    left out for it, see ``splits._exclude_leaks``)."""
    usable = manifest[manifest.status == "ok"]
    cut = manifest[manifest.reason.str.startswith(GROUP_ACROSS_SPLITS)] if "reason" in manifest else manifest[:0]
    return {
        "subjects": int(usable.group.replace("", pd.NA).nunique()) if "group" in usable else 0,
        "groups": int(usable.split_group.nunique()) if "split_group" in usable else 0,
        "cut_groups": int(cut.split_group.nunique()) if "split_group" in cut else 0,
        "cut_images": len(cut),
    }


def counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Groups (``split_group``) per class and split, and in all: what the data report shows."""
    usable = manifest[manifest.status == "ok"]
    table = usable.groupby(["label", "split"]).split_group.nunique().unstack(fill_value=0)
    table["all"] = usable.groupby("label").split_group.nunique()
    across = usable.groupby("split").split_group.nunique()  # a group of two classes counts once here
    across["all"] = usable.split_group.nunique()
    table.loc["all"] = across
    return table[[c for c in ("train", "val", "test", "all") if c in table.columns]].fillna(0).astype(int)


def largest(manifest: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The ``top`` groups with the most images: their images, classes, split and the subjects they tie."""
    usable = manifest[manifest.status == "ok"]
    table = usable.groupby("split_group").agg(
        images=("path", "size"),
        labels=("label", lambda s: ", ".join(f"{k} ({n})" for k, n in sorted(s.value_counts().items()))),
        split=("split", "first"),
        subjects=("group", lambda s: ", ".join(sorted(set(s) - {""}))),
    )
    return table.sort_values(["images"], ascending=False, kind="stable").head(top)


def describe(manifest: pd.DataFrame, column: str, pattern: str) -> str:
    """Where the groups came from and what they hold, in words (the summary and the data report). ``column`` is the
    manifest column groups were read from ("" when none was), ``pattern`` GROUP_PATTERN."""
    usable = manifest[manifest.status == "ok"]
    if not given(usable):
        tried = " or ".join(
            [f"column {column!r}"] * bool(column) + [f"pattern {pattern!r} (it matched no path)"] * bool(pattern)
        )
        return (
            f"No groups from the data{f' ({tried})' if tried else ''}: each image is a group of its own, joined only "
            "with its copies. If several images show one subject (a patient, a lesion, a session), name it with "
            "GROUP_COLUMN (a CSV manifest's column) or GROUP_PATTERN (a pattern on each path), or the test split "
            "will score subjects the model has seen."
        )
    grouped = usable[usable.group != ""]
    source = " and ".join([f"column {column!r}"] * bool(column) + [f"pattern {pattern!r}"] * bool(pattern))
    return (
        f"Groups from the {source}: {grouped.group.nunique()} subject(s) hold {len(grouped)} of {len(usable)} usable "
        f"images (the {len(usable) - len(grouped)} others stand alone). Subjects tied by duplicates are joined: "
        f"{usable.split_group.nunique()} group(s) in all, each in one split and in one fold of the label review."
    )
