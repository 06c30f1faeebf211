"""Check every file of a source in parallel worker processes and stream the rows to CSV.

Workers get a bounded batch of paths at a time and send back a small row each, so
memory holds no image beyond the ones being decoded, whatever the number of files.
"""

import csv
import hashlib
import itertools
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from ..core.choices import HASH_SIZE, MAX_PIXELS
from ..core.cpu import available_cores
from .checks import check_image

COLUMNS = ["path", "label", "split", "dup_group", "sha256", "width", "height", "mode", "status", "reason"]
EXTRA_COLUMNS = ["given_split", "origin", "dhash", "dup_count", "review", "group", "split_group"]
MANIFEST_COLUMNS = COLUMNS + EXTRA_COLUMNS
BATCH = 512  # rows in flight at once


def worker_count(workers: int) -> int:
    """0 means one worker per CPU core this process may use."""
    if workers > 0:
        return workers
    return available_cores()


def _check_row(row: dict, max_pixels: int, hash_size: int) -> dict:
    if row.get("status") == "excluded":  # e.g. a failed download: nothing to read
        return row
    return {**row, **check_image(row["path"], max_pixels, hash_size)}


def check_rows(
    rows: Iterable[dict],
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    hash_size: int = HASH_SIZE,
    total: int | None = None,
) -> Iterator[dict]:
    """Each row with the facts of ``checks.check_image`` added, in input order."""
    check = partial(_check_row, max_pixels=max_pixels, hash_size=hash_size)
    workers = worker_count(workers)
    progress = tqdm(total=total, desc="checking images", unit="img", mininterval=1.0)
    rows = iter(rows)
    if workers == 1:
        for row in rows:
            progress.update()
            yield check(row)
    else:
        # spawn: a fresh interpreter is safe whatever the notebook kernel has loaded (threads, CUDA)
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            while batch := list(itertools.islice(rows, BATCH)):
                for row in pool.imap(check, batch, chunksize=16):
                    progress.update()
                    yield row
    progress.close()


def write_csv(rows: Iterable[dict], path: Path, columns: list[str]) -> int:
    """Stream rows to ``path``; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({"split": "", "status": "ok", "reason": "", **row})
            count += 1
    return count


def limit_per_class(rows: Iterable[dict], max_per_class: int, seed: int, root: Path) -> list[dict]:
    """A seeded sample of at most ``max_per_class`` rows of each class (for quick trial runs). Drawn by each
    path relative to the source's ``root``, so the data folder may move without changing the sample."""

    def rank(row: dict) -> str:
        return hashlib.sha256(f"{seed}:{Path(os.path.relpath(row['path'], root)).as_posix()}".encode()).hexdigest()

    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    return [row for label in sorted(by_label) for row in sorted(by_label[label], key=rank)[:max_per_class]]
