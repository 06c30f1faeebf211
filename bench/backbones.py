"""What each backbone costs on this CPU: featurize images/s and the exported model's size, bundled and timm models.

    .venv/bin/python bench/backbones.py [--images 256] [--size 300] [--resolution 0] [--backbones a,b,...]

Bakes the default project into a temporary folder and writes JPEGs there. Each backbone is built by
``modeling.pooling.featurizer`` (average pooling, the probe's default) at its own input size (``--resolution 0``),
exported to ONNX as ``modeling/features.py`` does, and run through ONNX Runtime on the same files, decoded with
``core.images.load_batch``, in batches of the project's default size. Speed and size do not depend on the weights'
values, so the timm models (and torchvision's) run with random weights: nothing is downloaded. The baseline is
the project's default backbone, measured in the same run; every other row says its ratio to it.

Prints one JSON object: per backbone, images/s end to end and model only, the ONNX file's size in MB, the
parameters in millions and the feature width.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bake, cores, machine, print_report, timed, write_jpegs  # noqa: E402
from featurize import figures, run_batches  # noqa: E402

# The bundled models, then timm models of similar cost (0.2 to 1.1 GFLOPs at 224 px), one per family.
DEFAULT = (
    "efficientnet_lite0,efficientnet_lite2,timm:mobilenetv3_large_100,timm:efficientnet_b0,"
    "timm:tf_efficientnetv2_b0,timm:regnety_004,timm:convnext_atto,timm:vit_tiny_patch16_224"
)


def measure(name: str, paths: list[str], resolution: int, batch_size: int, folder: Path) -> dict[str, object]:
    from solar_cell_inspection.core import onnx_io
    from solar_cell_inspection.core.images import load_batch
    from solar_cell_inspection.modeling.backbones import backbone_spec
    from solar_cell_inspection.modeling.onnx_export import export_onnx
    from solar_cell_inspection.modeling.pooling import featurizer

    spec = backbone_spec(name)
    resolution = resolution or spec.resolution
    weights = "pretrained" if spec.bundled else "none"
    model = featurizer(name, weights=weights, resolution=resolution).eval()
    path = folder / f"{name.replace(':', '-')}.onnx"
    _, export_s = timed(lambda: export_onnx(model, path, resolution, "features"))
    session = onnx_io.session(path)

    def decode(batch: list[str]) -> np.ndarray:
        return load_batch(batch, resolution)

    def infer(images: np.ndarray) -> np.ndarray:
        return onnx_io.run(session, images)

    infer(decode(paths[:batch_size]))  # the first call allocates: kept out of the timing
    features, decode_s, model_s = run_batches(paths, batch_size, decode, infer)
    return {
        "backbone": name,
        "resolution": resolution,
        "weights": weights,
        "features": int(features.shape[1]),
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "onnx_mb": round(path.stat().st_size / 2**20, 1),
        "onnx_export_seconds": round(export_s, 1),
        **figures(len(paths), decode_s, model_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=300, help="JPEG width and height (ELPV cells are 300)")
    parser.add_argument("--resolution", type=int, default=0, help="0: each backbone's own input size")
    parser.add_argument("--backbones", default=DEFAULT, help="comma-separated; the first is the baseline")
    args = parser.parse_args()
    load_at_start = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="backbones-bench-") as tmp:
        bake(Path(tmp))
        from solar_cell_inspection.core.config import ProbeConfig

        batch_size = ProbeConfig().batch_size
        paths = [str(p) for p in write_jpegs(Path(tmp) / "images", 0, args.images, args.size, cores())]
        rows = [measure(n, paths, args.resolution, batch_size, Path(tmp)) for n in args.backbones.split(",")]

    baseline = rows[0]
    for row in rows:
        row["images_per_s_vs_baseline"] = round(row["images_per_s"] / baseline["images_per_s"], 2)
    print_report(
        {
            "benchmark": "backbones",
            "baseline": baseline["backbone"],
            "images": len(paths),
            "jpeg_size": args.size,
            "batch_size": batch_size,
            "backbones": rows,
            "machine": machine(load_at_start),
        }
    )


if __name__ == "__main__":
    main()
