"""Does the label review find wrong labels? A known share of labels flipped in the bundled data, then looked for.

    .venv/bin/python bench/label_noise.py [--datasets elpv digits] [--rates 0.05 0.1] [--seeds 0 1 2]
                                          [--per-class 0] [--resolution 224]

Bakes the default project into a temporary folder. For each dataset (the bundled ELPV cells and scikit-learn's
digits, as the project's samples write them), flip rate and seed: writes a CSV manifest ``path,label`` of the images
with a seeded share of the labels flipped (ELPV: to the other class; digits: to a random other class), runs
acquisition on it (``acquire``: checks, duplicate groups, splits) and then the review step (``find_label_errors``)
once per ranker, on the same probabilities (the step's probes are seeded; the script checks that both rankings carry
the same probabilities). Per ranker:

* train + validation (out-of-fold probabilities, where both rankers apply): recall at k, the share of the flipped
  images found among the first k of the ranking (k = the flipped images among them), and the precision and recall of
  the set the ranker flags. ``probability`` (the ranking before cleanlab, the baseline) flags an image when the
  probe's likeliest class is not its label; ``cleanlab`` flags what ``cleanlab.filter.find_label_issues`` finds.
* test (one probe fitted on train + validation): the same figures for the test split.

Flags count as wrong only against the flips: an image the data itself mislabels counts against precision.
Figures are pooled over the seeds (sums of found and flagged images), with each seed's beside them. Prints one
JSON object.
"""

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DIGITS_SAMPLE = (
    common.TEMPLATE / "{{cookiecutter.project}}" / "src" / "{{cookiecutter.package}}" / "acquisition" / "samples"
)
SPLITS = {"train_val": ("train", "val"), "test": ("test",)}


def bundled_images(dataset: str, dest: Path) -> pd.DataFrame:
    """The bundled sample written out as the project writes it: one row (path, label) per image."""
    if dataset == "elpv":
        from solar_cell_inspection.acquisition import samples

        root = samples.materialize("elpv", dest)
    else:  # the default bake keeps only its own sample: digits' writer is read from the template
        spec = importlib.util.spec_from_file_location("digits_sample", DIGITS_SAMPLE / "digits.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        root = dest
        if not (root / ".complete").exists():
            module.write(root)
            (root / ".complete").touch()
    paths = sorted(p for p in root.rglob("*.png"))
    return pd.DataFrame({"path": [str(p) for p in paths], "label": [p.parent.name for p in paths]})


def subsample(images: pd.DataFrame, per_class: int) -> pd.DataFrame:
    if not per_class:
        return images
    picked = images.sample(frac=1, random_state=0).groupby("label").head(per_class)
    return picked.sort_values("path").reset_index(drop=True)


def flip(images: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """A seeded ``rate`` share of the labels changed to another class (the other one, with two classes)."""
    rng = np.random.default_rng(seed)
    classes = sorted(images.label.unique())
    chosen = rng.choice(len(images), size=round(rate * len(images)), replace=False)
    flipped = images.copy()
    for i in chosen:
        others = [c for c in classes if c != images.label.iloc[i]]
        flipped.iloc[i, flipped.columns.get_loc("label")] = others[rng.integers(len(others))]
    return flipped, set(images.path.iloc[chosen])


def measure(errors: pd.DataFrame, flipped: set[str], splits: tuple[str, ...]) -> dict[str, int]:
    """Counts on the ranking restricted to ``splits`` (its order kept)."""
    part = errors[errors.split.isin(splits)].reset_index(drop=True)
    wrong = part.path.isin(flipped).to_numpy()
    flagged = part.flagged.astype(bool).to_numpy()
    k = int(wrong.sum())
    return {
        "images": len(part),
        "flipped": k,
        "found_in_top_k": int(wrong[:k].sum()),
        "flagged": int(flagged.sum()),
        "flagged_flipped": int((flagged & wrong).sum()),
    }


def rates(counts: dict[str, int]) -> dict[str, float | int]:
    def share(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        **counts,
        "recall_at_k": share(counts["found_in_top_k"], counts["flipped"]),
        "flagged_precision": share(counts["flagged_flipped"], counts["flagged"]),
        "flagged_recall": share(counts["flagged_flipped"], counts["flipped"]),
    }


def one_condition(images: pd.DataFrame, rate: float, seed: int, work: Path, review) -> dict:
    """Flip, acquire, review with each ranker; the counts per ranker and split group."""
    from dataclasses import replace

    from solar_cell_inspection.acquisition.steps import acquire, find_label_errors
    from solar_cell_inspection.core.choices import REVIEW_RANKERS
    from solar_cell_inspection.core.config import DataConfig
    from solar_cell_inspection.core.run_folder import RunFolder

    noisy, flipped = flip(images, rate, seed)
    folder = work / f"rate{rate}-seed{seed}"
    folder.mkdir(parents=True)
    noisy.to_csv(folder / "labels.csv", index=False)
    run = RunFolder.open(folder / "run")
    cfg = DataConfig(data_dir=str(folder / "labels.csv"), labels_review=str(folder / "no_review.csv"))
    out, probabilities = {"flipped_images": len(flipped)}, {}
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON report only
        acquire(cfg, run)
        manifest = run.read_manifest()
        out["flipped_left_out_by_acquisition"] = len(flipped - set(manifest.path))
        for ranker in REVIEW_RANKERS:
            errors = find_label_errors(replace(review, ranker=ranker), run, manifest)
            probabilities[ranker] = errors.set_index("path").label_probability.sort_index()
            out[ranker] = {group: measure(errors, flipped, splits) for group, splits in SPLITS.items()}
    first, *others = probabilities.values()
    assert all(first.equals(p) for p in others), "every ranker must rank the same probabilities"
    return out


def pooled(conditions: list[dict], ranker: str, group: str) -> dict:
    counts = [c[ranker][group] for c in conditions]
    return rates({key: sum(c[key] for c in counts) for key in counts[0]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["elpv", "digits"], choices=["elpv", "digits"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.05, 0.1], help="share of labels flipped")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="one flip per seed")
    parser.add_argument("--per-class", type=int, default=0, help="0: every image; else this many per class")
    parser.add_argument("--resolution", type=int, default=224, help="the review featurizer's input size")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-label-noise-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        common.bake(Path(tmp))
        from solar_cell_inspection.core.choices import REVIEW_RANKERS
        from solar_cell_inspection.core.config import ReviewConfig

        review = ReviewConfig(resolution=args.resolution, feature_cache=str(Path(tmp) / "features"))
        report = {
            "backbone": review.backbone,
            "resolution": review.resolution,
            "folds": review.folds,
            "baseline": REVIEW_RANKERS[0],
            "top_k": "k = the flipped images in the split group; recall_at_k = found_in_top_k / k",
            "flagged": {
                "probability": "the probe's likeliest class is not the given label",
                "cleanlab": "cleanlab.filter.find_label_issues (prune_by_noise_rate)",
            },
        }
        for dataset in args.datasets:
            images = subsample(bundled_images(dataset, Path(tmp) / "data" / dataset), args.per_class)
            entry = {"images": len(images), "classes": int(images.label.nunique()), "by_rate": {}}
            for rate in args.rates:
                started = time.perf_counter()
                conditions = [one_condition(images, rate, seed, Path(tmp) / dataset, review) for seed in args.seeds]
                seconds = time.perf_counter() - started
                entry["by_rate"][str(rate)] = {
                    "seeds": args.seeds,
                    "seconds": round(seconds, 1),
                    **{
                        ranker: {group: pooled(conditions, ranker, group) for group in SPLITS}
                        for ranker in REVIEW_RANKERS
                    },
                    "flipped_left_out_by_acquisition": sum(c["flipped_left_out_by_acquisition"] for c in conditions),
                    "per_seed": [
                        {ranker: {g: rates(c[ranker][g]) for g in SPLITS} for ranker in REVIEW_RANKERS}
                        for c in conditions
                    ],
                }
            report[dataset] = entry
        report["machine"] = common.machine(load)
    common.print_report(report)


if __name__ == "__main__":
    main()
