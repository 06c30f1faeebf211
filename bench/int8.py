"""int8 against fp32: images/s at batch 32, agreement on the same images, and validation accuracy on the demo.

    .venv/bin/python bench/int8.py [--images 512] [--seconds 30] [--resolution 0] [--demo DIR] [--skip-demo]

Bakes the default project into a temporary folder; for each model below, a copy of its exported folder is
quantized there with ``deployment.quantize.quantize`` (calibrated on DeployConfig's number of images, as export
does), then both precisions are loaded with ``deployment.predict.load_model(dir, precision)`` and compared in the
same run:

* speed: ``predict`` on one batch of 32 decoded images, fp32 and int8 taking turns (three rounds each);
* agreement: labels and the largest probability gap on the same images, decoded once;
* the built model: the default backbone at its default resolution under a linear head from ELPV's class means
  (calibration cells), calibrated on those cells and compared on others;
* the demo's model, when ``make demo`` has run (runs/demo with manifest.csv and model/): calibrated on its
  training images, compared on its validation images, and the validation accuracy of each precision
  (``quantize.validation_accuracies``, the check export keeps or drops the int8 model by).

The demo's own folder is only read. Prints one JSON object.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TEMPLATE, bake, build_default_model, elpv_cells, machine, print_report  # noqa: E402

DEMO = TEMPLATE / "build" / "demo" / "solar-cell-inspection" / "runs" / "demo"
BATCH = 32
ROUNDS = 3


def speeds(models: dict, images: np.ndarray, seconds: float) -> dict[str, float]:
    """Images/s of each model on the same batch; they take turns so a change in the machine's load hits both."""
    from solar_cell_inspection.deployment.predict import predict

    done, spent = dict.fromkeys(models, 0), dict.fromkeys(models, 0.0)
    for model in models.values():
        predict(model, images)  # the first call allocates
    for _ in range(ROUNDS):
        for name, model in models.items():
            started = time.perf_counter()
            while done[name] < 2 * len(images) or time.perf_counter() - started < seconds / ROUNDS / len(models):
                predict(model, images)
                done[name] += len(images)
            spent[name] += time.perf_counter() - started
    return {name: round(done[name] / spent[name], 1) for name in models}


def agreement(models: dict, paths: list[str]) -> dict[str, object]:
    """Same labels? How far apart are the probabilities? On the same decoded images, a batch at a time."""
    from solar_cell_inspection.core.images import load_batch
    from solar_cell_inspection.deployment.predict import predict

    fp32, int8 = models["fp32"], models["int8"]
    same, gap = 0, 0.0
    for start in range(0, len(paths), BATCH):
        images = load_batch(paths[start : start + BATCH], fp32.resolution, fp32.resize)
        p32, p8 = predict(fp32, images), predict(int8, images)
        same += sum(a == b for a, b in zip(fp32.labels(p32), int8.labels(p8)))
        gap = max(gap, float(np.abs(p32 - p8).max()))
    return {"images_compared": len(paths), "labels_agree": round(same / len(paths), 4), "max_probability_gap": gap}


def compare(model_dir: Path, work: Path, calibration: list[str], compared: list[str], seconds: float) -> dict:
    """Quantize a copy of ``model_dir`` in ``work``, then speed and agreement of both precisions."""
    from solar_cell_inspection.core.images import load_batch
    from solar_cell_inspection.deployment.predict import INT8_MODEL_FILE, METADATA_FILE, MODEL_FILE, load_model
    from solar_cell_inspection.deployment.quantize import quantize

    work.mkdir(parents=True)
    for name in (MODEL_FILE, METADATA_FILE):
        shutil.copy(model_dir / name, work / name)
    started = time.perf_counter()
    quantize(work, calibration)
    quantize_s = time.perf_counter() - started
    models = {precision: load_model(work, precision) for precision in ("fp32", "int8")}
    batch = load_batch(compared[:BATCH], models["fp32"].resolution, models["fp32"].resize)
    per_s = speeds(models, batch, seconds)
    return {
        "resolution": models["fp32"].resolution,
        "calibration_images": len(calibration),
        "quantize_seconds": round(quantize_s, 1),
        "model_mb": {
            p: round((work / f).stat().st_size / 1e6, 1) for p, f in (("fp32", MODEL_FILE), ("int8", INT8_MODEL_FILE))
        },
        "batch_32_images_per_s": per_s,
        "int8_vs_fp32_images_per_s": round(per_s["int8"] / per_s["fp32"], 2),
        **agreement(models, compared),
    }


def demo_figures(demo: Path, work: Path, images: int, seconds: float) -> dict:
    """The demo's model: calibrated on its training images, compared and checked on its validation images."""
    from solar_cell_inspection.core.config import DeployConfig
    from solar_cell_inspection.core.run_folder import RunFolder
    from solar_cell_inspection.deployment.quantize import calibration_sample, validation_accuracies

    manifest = RunFolder(demo).read_manifest()
    train, val = manifest[manifest.split == "train"], manifest[manifest.split == "val"]
    calibration = calibration_sample(list(train.path), DeployConfig().calibration_images)
    figures = compare(demo / "model", work, calibration, list(val.path)[:images], seconds)
    fp32, int8 = validation_accuracies(work, list(val.path), list(val.label.astype(str)))
    accuracy = {"fp32": round(fp32, 4), "int8": round(int8, 4), "images": len(val)}
    return {"model": str(demo / "model"), **figures, "val_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images compared for agreement (ELPV cells)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the speed comparison runs per model")
    parser.add_argument("--resolution", type=int, default=0, help="of the model built (0: the backbone's default)")
    parser.add_argument("--demo", type=Path, default=DEMO, help="a run folder with manifest.csv and model/")
    parser.add_argument("--skip-demo", action="store_true", help="only the built model")
    args = parser.parse_args()
    load_at_start = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        tmp = Path(tmp)
        bake(tmp)
        from solar_cell_inspection.core.config import DeployConfig

        calibrate = DeployConfig().calibration_images
        cells = elpv_cells(calibrate + args.images)
        classes = ("defective", "functional")
        built = build_default_model(tmp / "built", args.resolution, classes, head_from=cells[:calibrate])
        calibration, compared = [str(p) for p, _ in cells[:calibrate]], [str(p) for p, _ in cells[calibrate:]]
        report = {"benchmark": "int8", "built_model": compare(built, tmp / "b", calibration, compared, args.seconds)}
        demo_found = (args.demo / "manifest.csv").is_file() and (args.demo / "model").is_dir()
        if demo_found and not args.skip_demo:
            report["demo_model"] = demo_figures(args.demo, tmp / "demo", args.images, args.seconds)
        else:
            report["demo_model"] = None if args.skip_demo else f"no demo run at {args.demo}: run `make demo` first"
    print_report({**report, "machine": machine(load_at_start)})


if __name__ == "__main__":
    main()
