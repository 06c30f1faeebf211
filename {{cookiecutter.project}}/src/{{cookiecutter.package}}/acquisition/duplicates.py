"""Exact (sha256) and near (dhash Hamming distance) duplicates, grouped transitively.

Near pairs are found without comparing every pair: split the hash into
``max_distance + 1`` pieces; two hashes within ``max_distance`` bits agree exactly on
at least one piece (pigeonhole), so only hashes sharing a piece are compared.

A group whose images carry different labels (one picture filed under two classes) is a conflict: one of the labels
is wrong. ``resolve_conflicts`` applies ``CONFLICTING_LABELS`` to them before the splits are drawn, and
``conflicting_groups`` lists them, for the data report and the review.
"""

import numpy as np
import pandas as pd

from ..core.choices import CONFLICTING_LABELS

BIT_COUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between packed hashes ``a`` (n, bytes) and ``b`` (bytes,) or (n, bytes)."""
    return BIT_COUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int32)


def near_pairs(hashes: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    """Index pairs (i < j) of packed hashes at most ``max_distance`` bits apart."""
    bits = np.unpackbits(hashes, axis=1)
    pairs: set[tuple[int, int]] = set()
    for piece in np.array_split(np.arange(bits.shape[1]), max_distance + 1):
        keys = pd.Series([row.tobytes() for row in np.packbits(bits[:, piece], axis=1)])
        for members in keys.groupby(keys).indices.values():
            if len(members) < 2:
                continue
            for k, i in enumerate(members[:-1]):
                others = members[k + 1 :]
                close = others[hamming(hashes[others], hashes[i]) <= max_distance]
                pairs.update((int(i), int(j)) for j in close)
    return pairs


def group_duplicates(manifest: pd.DataFrame, max_distance: int) -> pd.DataFrame:
    """Add ``dup_group`` (the group's first sha256, 12 hex digits) and ``dup_count`` to the usable rows.

    ``max_distance`` < 0 turns near-duplicate search off (exact copies still group).
    """
    manifest = manifest.copy()
    manifest["dup_group"], manifest["dup_count"] = "", 0
    usable = manifest.index[manifest.status == "ok"]
    if len(usable) == 0:
        return manifest
    sha = manifest.loc[usable, "sha256"].to_numpy()
    groups = UnionFind(len(usable))
    for members in pd.Series(sha).groupby(sha).indices.values():
        for j in members[1:]:
            groups.union(members[0], j)
    if max_distance >= 0:
        hashes = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.uint8) for h in manifest.loc[usable, "dhash"]])
        for i, j in near_pairs(hashes, max_distance):
            groups.union(i, j)
    roots = np.array([groups.find(i) for i in range(len(usable))])
    key = pd.Series(sha).groupby(roots).transform("min").str[:12].to_numpy()
    manifest.loc[usable, "dup_group"] = key
    manifest.loc[usable, "dup_count"] = pd.Series(key).map(pd.Series(key).value_counts()).to_numpy()
    return manifest


def drop_duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    """Keep the first image (by path) of each duplicate group; exclude the others, naming the one kept."""
    manifest = manifest.copy()
    usable = manifest[manifest.status == "ok"].sort_values("path")
    keeper = usable.groupby("dup_group").path.transform("first")
    dropped = keeper.index[usable.path != keeper]
    manifest.loc[dropped, "status"] = "excluded"
    manifest.loc[dropped, "reason"] = "duplicate of " + keeper[dropped]
    manifest.loc[dropped, "split"] = ""
    return manifest


CONFLICT = "conflicting labels"  # how the reason of an image excluded for a conflict starts


def _conflicted(manifest: pd.DataFrame, usable_only: bool) -> pd.DataFrame:
    """The grouped rows of every duplicate group whose rows carry more than one label."""
    grouped = manifest[manifest.dup_group != ""]
    if usable_only:
        grouped = grouped[grouped.status == "ok"]
    return grouped[grouped.groupby("dup_group").label.transform("nunique") > 1]


def _label_tally(labels: pd.Series) -> str:
    """``cat (2), dog (1)``: most common first, then by name."""
    counts = sorted(labels.value_counts().items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{label} ({count})" for label, count in counts)


def resolve_conflicts(manifest: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Apply ``CONFLICTING_LABELS`` to duplicate groups whose usable images carry different labels.

    ``majority`` excludes the images whose label is not the group's most common one (a tie excludes the whole
    group), ``exclude`` the whole group, ``keep`` nothing. Run it before ``splits.assign_splits``: a group given to
    train and test (split folders) is then resolved as a whole, and the leakage rule sees only what is kept.
    Excluded images keep their file and their group; the reason names the conflict."""
    if policy not in CONFLICTING_LABELS:
        raise ValueError(f"Invalid CONFLICTING_LABELS {policy!r}. Only {', '.join(CONFLICTING_LABELS)} are supported.")
    manifest = manifest.copy()
    if policy == "keep":
        return manifest
    for group, rows in _conflicted(manifest, usable_only=True).groupby("dup_group"):
        counts = rows.label.value_counts()
        top = counts.index[counts == counts.max()]
        held = f"{CONFLICT}: duplicate group {group} holds {_label_tally(rows.label)}"
        if policy == "majority" and len(top) == 1:
            out, reason = rows.index[rows.label != top[0]], f"{held}; only its majority label {top[0]} is kept"
        else:
            tie = "no label has a majority, so " if policy == "majority" else ""
            out, reason = rows.index, f"{held}; {tie}the whole group is left out"
        manifest.loc[out, ["status", "reason", "split"]] = ["excluded", reason, ""]
    return manifest


def conflicting_groups(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per duplicate group whose images carry different labels (whatever became of them): its images, their
    labels, and what is kept where. Empty when there is none. The data report and the review show these first."""
    rows = _conflicted(manifest, usable_only=False)
    columns = ["images", "labels", "kept", "excluded"]
    if rows.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="dup_group"))
    kept = rows[rows.status == "ok"]
    where = kept.split.where(kept.split != "", "no split")
    kept_in = (
        (kept.label + " in " + where)
        .groupby(kept.dup_group)
        .agg(lambda s: ", ".join(f"{k} ({n})" for k, n in sorted(s.value_counts().items())))
    )
    table = rows.groupby("dup_group").agg(
        images=("path", "size"), labels=("label", _label_tally), excluded=("status", lambda s: int((s != "ok").sum()))
    )
    table["kept"] = kept_in.reindex(table.index).fillna("none")
    return table[columns].sort_values(["images", "dup_group"], ascending=[False, True], kind="stable")


def conflicting_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """Every image of a conflicting group, group by group (in ``conflicting_groups`` order): for a review to show
    side by side before anything else; relabelling or excluding one in the labels review settles its group."""
    rows = _conflicted(manifest, usable_only=False)
    order = {group: i for i, group in enumerate(conflicting_groups(manifest).index)}
    columns = [c for c in ("dup_group", "path", "label", "given_split", "split", "status", "reason") if c in rows]
    ranked = rows.assign(_order=rows.dup_group.map(order)).sort_values(["_order", "label", "path"], kind="stable")
    return ranked[columns].reset_index(drop=True)


def describe(max_distance: int, dropped: bool, conflicting_labels: str) -> str:
    near = (
        f"near copies have dhash (16 x 16 bits) within {max_distance} bits of each other"
        if max_distance >= 0
        else "near-copy search is off"
    )
    keep = "one image per group is kept, the others excluded" if dropped else "all images of a group are kept"
    conflicts = {
        "majority": "only the images with the group's most common label are kept (a tie excludes the whole group)",
        "exclude": "the whole group is excluded",
        "keep": "every image is kept, whatever its label",
    }[conflicting_labels]
    return (
        f"Exact copies share a sha256; {near}. Groups are transitive and never straddle splits; {keep}. "
        f"In a group whose images carry different labels (CONFLICTING_LABELS={conflicting_labels}), {conflicts}."
    )
