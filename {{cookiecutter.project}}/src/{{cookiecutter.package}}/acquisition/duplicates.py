"""Exact (sha256) and near (dhash Hamming distance) duplicates, grouped transitively.

Near pairs are found without comparing every pair: split the hash into
``max_distance + 1`` pieces; two hashes within ``max_distance`` bits agree exactly on
at least one piece (pigeonhole), so only hashes sharing a piece are compared.
"""

import numpy as np
import pandas as pd

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


def describe(max_distance: int, dropped: bool) -> str:
    near = (
        f"near copies have dhash (16 x 16 bits) within {max_distance} bits of each other"
        if max_distance >= 0
        else "near-copy search is off"
    )
    keep = "one image per group is kept, the others excluded" if dropped else "all images of a group are kept"
    return f"Exact copies share a sha256; {near}. Groups are transitive and never straddle splits; {keep}."
