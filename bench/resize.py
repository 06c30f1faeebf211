"""How should an image become square? Each RESIZE mode measured on natural photos and on ELPV.

    .venv/bin/python bench/resize.py [--elpv-images 0] [--backbones efficientnet_lite0 efficientnet_lite2]

Bakes the default project into a temporary folder and, for each mode (stretch, crop, pad):

* natural photos: the photos that ship with installed packages (matplotlib, scikit-image,
  scikit-learn, imgaug), each with the ImageNet classes it shows, through each bundled
  pretrained network and its ImageNet classifier: top-1 and top-5 hits and the mean
  probability given to the right classes. These photos are not square, so the modes differ.
* ELPV: a logistic-regression probe on average-pooled features, C chosen on validation,
  with the project's own split; validation accuracy per mode. ELPV cells are square, so the
  three modes must give the same images and the same accuracy (a check, not a contest).

Prints one JSON object.
"""

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bake  # noqa: E402

# Photo file (relative to its package's data folder) -> the ImageNet classes it shows.
PHOTOS = {
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"): {"military uniform"},
    ("skimage", "data/chelsea.png"): {"tabby", "tiger cat", "Egyptian cat"},
    ("skimage", "data/coffee.png"): {"espresso", "cup", "coffee mug"},
    ("skimage", "data/rocket.jpg"): {"missile", "projectile", "space shuttle"},
    ("skimage", "data/motorcycle_left.png"): {"moped", "motor scooter"},
    ("sklearn", "datasets/images/china.jpg"): {"palace", "monastery", "bell cote", "stupa"},
    ("sklearn", "datasets/images/flower.jpg"): {"daisy"},
    ("imgaug", "quokka.jpg"): {"wallaby"},
}


def photo_paths() -> dict[Path, set[str]]:
    import importlib

    found = {}
    for (package, relative), classes in PHOTOS.items():
        try:
            path = Path(importlib.import_module(package).__file__).parent / relative
        except ImportError:
            continue  # a package that is not installed takes its photos with it
        if path.is_file():
            found[path] = classes
    return found


def photos_per_mode(backbone: str, modes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    import torch
    from helpers.imagenet import imagenet_classes, imagenet_classifier  # the baked project's test helpers
    from solar_cell_inspection.core.images import load_batch
    from solar_cell_inspection.modeling.backbones import BACKBONES

    resolution = BACKBONES[backbone].resolution
    model = imagenet_classifier(backbone, resolution=resolution)
    names = imagenet_classes()
    photos = photo_paths()
    out = {}
    for mode in modes:
        with torch.inference_mode():
            probs = model(torch.from_numpy(load_batch([str(p) for p in photos], resolution, mode))).softmax(1).numpy()
        top1 = top5 = 0
        right = []
        for row, classes in zip(probs, photos.values()):
            order = [names[i] for i in np.argsort(-row)[:5]]
            top1 += order[0] in classes
            top5 += bool(classes & set(order))
            right.append(sum(row[names.index(c)] for c in classes))
        out[mode] = {
            "photos": len(photos),
            "top1_hits": top1,
            "top5_hits": top5,
            "mean_probability_of_right_classes": round(float(np.mean(right)), 4),
        }
    return out


def elpv_per_mode(images: int, modes: tuple[str, ...], work: Path) -> dict[str, float]:
    from solar_cell_inspection.acquisition import samples
    from solar_cell_inspection.acquisition.steps import acquire
    from solar_cell_inspection.core.config import DataConfig
    from solar_cell_inspection.core.run_folder import RunFolder
    from solar_cell_inspection.modeling.features import FeatureSpec, featurize
    from solar_cell_inspection.modeling.probe import fit_probe

    run = RunFolder.open(work / "run")
    data = samples.materialize("elpv", work / "elpv")
    cfg = DataConfig(data_dir=str(data), labels_review=str(work / "no_review.csv"), max_per_class=images // 2)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON report only
        acquire(cfg, run)
    manifest = run.read_manifest()
    y = (manifest.label == "defective").to_numpy().astype(int)
    train, val = (manifest.split == "train").to_numpy(), (manifest.split == "val").to_numpy()
    out = {}
    for mode in modes:
        x = featurize(list(manifest.path), FeatureSpec("efficientnet_lite0", 224, resize=mode), work_dir=work)
        result = fit_probe(x[train], y[train], x[val], y[val], (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0))
        out[mode] = round(result.val_accuracy, 4)
    out["n_train"], out["n_val"] = int(train.sum()), int(val.sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elpv-images", type=int, default=0, help="0: all 2,624; else a class-balanced subset")
    parser.add_argument("--skip-elpv", action="store_true")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="resize-bench-") as tmp:
        sys.path.insert(0, str(bake(Path(tmp)) / "tests"))
        from solar_cell_inspection.core.choices import RESIZES as RESIZE_CHOICES

        report = {"photos": {name: photos_per_mode(name, RESIZE_CHOICES) for name in args.backbones}}
        if not args.skip_elpv:
            report["elpv_val_accuracy_probe_average_pooling"] = elpv_per_mode(
                args.elpv_images, RESIZE_CHOICES, Path(tmp)
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
