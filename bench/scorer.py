"""The batch scorer against a plain ONNX Runtime loop: images/s, and peak memory on 20,000 images and on a quarter.

    .venv/bin/python bench/scorer.py [--images 20000] [--size 64] [--resolution 0] [--model DIR]

Bakes the default project into a temporary folder, exports a model as the pipeline does (the default backbone at
its default resolution under a linear head; or ``--model DIR``) and writes small JPEGs in four sub-folders (the
model resizes them anyway). Then, each as a child process of its own, on the same files in the same run:

* baseline: a plain loop, ``core.images.load_batch`` of 32 paths + ``predict`` with ``deployment.predict``'s
  session, each row written to a CSV; nothing else (no checks, no error rows, no progress, no resume);
* the scorer, ``python -m <package> score --model M --input FOLDER --output CSV``, on every image and on one
  sub-folder (a quarter): its peak memory must not grow with the number of images.

Peak memory is each child's own maximum resident set (``os.wait4``). Prints one JSON object, with the ratios to
the baseline and whether the two sides gave the same labels.
"""

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PARTS = 4


def plain_loop(model_dir: Path, folder: Path, output: Path, batch_size: int = 32) -> None:
    """The baseline: what anyone would write first with ONNX Runtime. Runs in its own process (``--plain-loop``)."""
    from solar_cell_inspection.core.images import load_batch
    from solar_cell_inspection.deployment.predict import load_model, predict

    model = load_model(model_dir)
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    with output.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "prediction", *[f"p_{name}" for name in model.classes]])
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            probs = predict(model, load_batch(batch, model.resolution, model.resize))
            for path, label, row in zip(batch, model.labels(probs), probs):
                writer.writerow([path, label, *[f"{p:.6f}" for p in row]])


def write_images(folder: Path, images: int, size: int) -> list[Path]:
    """``images`` JPEGs spread over PARTS sub-folders, so one sub-folder is a quarter of the collection."""
    shares = [images // PARTS + (part < images % PARTS) for part in range(PARTS)]
    paths, first = [], 0
    for part, share in enumerate(shares):
        paths += common.write_jpegs(folder / f"part{part}", first, share, size, common.cores())
        first += share
    return paths


def measured(command: list[str], log: Path) -> dict[str, float]:
    with log.open("w") as output:  # the scorer's progress bar and messages: kept out of the JSON on stdout
        seconds, peak_mb, code = common.run_measured(command, stdout=output, stderr=output)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb, 1)}


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def agreement(scored: dict, plain: dict) -> dict[str, object]:
    """Do the scorer and the plain loop give the same answers for the same files?"""
    columns = [c for c in next(iter(plain.values())) if c.startswith("p_")]
    same = sum(scored[path]["prediction"] == row["prediction"] for path, row in plain.items())
    gap = max(abs(float(scored[path][c]) - float(row[c])) for path, row in plain.items() for c in columns)
    return {"labels_agree": round(same / len(plain), 4), "max_probability_difference": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64, help="JPEG width and height in pixels")
    parser.add_argument("--resolution", type=int, default=0, help="of the model built (0: the backbone's default)")
    parser.add_argument("--model", type=Path, help="an exported model folder (default: build one)")
    parser.add_argument("--plain-loop", nargs=3, type=Path, metavar=("MODEL", "FOLDER", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        return plain_loop(*args.plain_loop)
    load_at_start = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="scorer-bench-") as tmp:
        tmp = Path(tmp)
        common.bake(tmp)
        model_dir = args.model or common.build_default_model(tmp / "model", args.resolution)
        paths, write_s = common.timed(lambda: write_images(tmp / "images", args.images, args.size))
        quarter = tmp / "images" / "part0"
        score = [sys.executable, "-m", common.PACKAGE, "score", "--model", str(model_dir)]
        plain = measured(
            [sys.executable, __file__, "--plain-loop", str(model_dir), str(tmp / "images"), str(tmp / "plain.csv")],
            tmp / "plain.log",
        )
        full = measured([*score, "--input", str(tmp / "images"), "--output", str(tmp / "scores.csv")], tmp / "s.log")
        part = measured([*score, "--input", str(quarter), "--output", str(tmp / "quarter.csv")], tmp / "q.log")
        scored, plain_rows = read_rows(tmp / "scores.csv"), read_rows(tmp / "plain.csv")
        quarter_images = sum(1 for _ in quarter.iterdir())

    n = len(paths)
    plain["images_per_s"] = round(n / plain["seconds"], 1)
    full["images_per_s"] = round(n / full["seconds"], 1)
    part["images_per_s"] = round(quarter_images / part["seconds"], 1)
    common.print_report(
        {
            "benchmark": "scorer",
            "images": n,
            "jpeg_size": args.size,
            "seconds_to_write_images": round(write_s, 1),
            "model": str(args.model) if args.model else "built: default backbone + linear head",
            "baseline_plain_onnxruntime_loop": plain,
            "scorer": full,
            f"scorer_on_{quarter_images}_images": part,
            "scorer_vs_baseline_images_per_s": round(full["images_per_s"] / plain["images_per_s"], 2),
            "scorer_vs_baseline_peak_rss": round(full["peak_rss_mb"] / plain["peak_rss_mb"], 2),
            "scorer_peak_rss_all_vs_quarter": round(full["peak_rss_mb"] / part["peak_rss_mb"], 2),
            "scorer_rows": len(scored),
            "scorer_error_rows": sum(1 for row in scored.values() if row["error"]),
            **agreement(scored, plain_rows),
            "machine": common.machine(load_at_start),
        }
    )


if __name__ == "__main__":
    main()
