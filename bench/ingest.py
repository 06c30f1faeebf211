"""Ingestion benchmark: build the manifest of a folder of JPEGs, next to a plain PIL loop.

    .venv/bin/python bench/ingest.py [--images 20000] [--size 256] [--workers 0]

Bakes the default project into a temporary folder, writes the JPEGs there, then times in
the same run, on the same files:

* baseline: a single-process loop that opens and decodes every file with PIL;
* manifest, 1 worker: the project's full check (sha256, full decode, EXIF, dhash) in-process;
* manifest, N workers: the same in N worker processes, as ``01_acquire_data`` runs it;
* grouping duplicates and splitting the resulting table.

Prints one JSON object; ratios compare with the baseline measured in this run.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bake, machine, timed, write_jpegs  # noqa: E402


def make_dataset(root: Path, images: int, size: int, workers: int) -> None:
    share = images // 2
    for offset, label in enumerate(("a", "b")):
        write_jpegs(root / label, offset * share, share, size, workers)


def plain_pil_loop(paths: list[Path]) -> int:
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256, help="JPEG width and height in pixels")
    parser.add_argument("--workers", type=int, default=0, help="0 means one per CPU core")
    args = parser.parse_args()
    load_at_start = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        bake(Path(tmp))
        from solar_cell_inspection.acquisition import duplicates, sources, splits
        from solar_cell_inspection.acquisition.manifest import MANIFEST_COLUMNS, check_rows, worker_count, write_csv
        from solar_cell_inspection.core.run_folder import RunFolder

        workers = worker_count(args.workers)
        data = Path(tmp) / "images"
        _, make_seconds = timed(lambda: make_dataset(data, args.images, args.size, workers))
        paths = sorted(data.rglob("*.jpg"))
        plain_pil_loop(paths[:200])  # warm the page cache the same way for everyone

        def build(n_workers: int, out: Path) -> int:
            rows = sources.folder_rows(data)
            return write_csv(check_rows(rows, workers=n_workers), out, MANIFEST_COLUMNS)

        _, baseline = timed(lambda: plain_pil_loop(paths))
        memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, serial = timed(lambda: build(1, Path(tmp) / "serial.csv"))
        _, parallel = timed(lambda: build(workers, Path(tmp) / "manifest.csv"))
        memory_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        table = RunFolder(Path(tmp)).read_manifest(usable_only=False)
        grouped, group_seconds = timed(lambda: duplicates.group_duplicates(table, 10))
        _, split_seconds = timed(lambda: splits.assign_splits(grouped, 0.15, 0.25))

    n = len(paths)
    print(
        json.dumps(
            {
                "images": n,
                "jpeg_size": args.size,
                "workers": workers,
                "seconds_to_write_images": round(make_seconds, 1),
                "baseline_plain_pil_loop_images_per_s": round(n / baseline, 1),
                "manifest_1_worker_images_per_s": round(n / serial, 1),
                f"manifest_{workers}_workers_images_per_s": round(n / parallel, 1),
                "manifest_vs_baseline": round(baseline / parallel, 2),
                "manifest_parallel_vs_1_worker": round(serial / parallel, 2),
                "group_duplicates_seconds": round(group_seconds, 2),
                "assign_splits_seconds": round(split_seconds, 2),
                "duplicate_groups_found": int((grouped.dup_count > 1).sum()),
                "main_process_peak_rss_growth_mb": round((memory_after - memory_before) / 1024, 1),
                "machine": machine(load_at_start),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
