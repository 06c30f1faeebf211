"""Featurization images/s: ONNX Runtime (what the project runs on CPU) against torch eager, decoding included.

    .venv/bin/python bench/featurize.py [--images 512] [--size 300] [--resolution 0] [--batch-size 0]

Bakes the default project into a temporary folder and writes JPEGs there. The default backbone at its default
resolution (core/config.py's ProbeConfig) is exported to ONNX as modeling/features.py does; then, on the same
files in the same run, each side reads and decodes batches with ``core.images.load_batch`` and runs them:

* baseline: the backbone module in torch eager under ``torch.inference_mode``;
* ONNX Runtime: the exported featurizer through ``core.onnx_io``, as ``modeling.features.featurize`` runs it.

Prints one JSON object: images/s end to end and the model's share of it, the ratio to the baseline, and the
largest difference between the two sides' features (they must compute the same thing).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bake, cores, machine, print_report, timed, write_jpegs  # noqa: E402


def run_batches(paths: list[str], batch_size: int, decode, infer) -> tuple[np.ndarray, float, float]:
    """Features of every path, the seconds spent decoding and the seconds spent in the model."""
    out, decode_s, model_s = [], 0.0, 0.0
    for start in range(0, len(paths), batch_size):
        started = time.perf_counter()
        images = decode(paths[start : start + batch_size])
        decoded = time.perf_counter()
        out.append(infer(images))
        decode_s, model_s = decode_s + decoded - started, model_s + time.perf_counter() - decoded
    return np.concatenate(out), decode_s, model_s


def figures(n: int, decode_s: float, model_s: float) -> dict[str, float]:
    return {
        "images_per_s": round(n / (decode_s + model_s), 1),
        "model_only_images_per_s": round(n / model_s, 1),
        "decode_share_of_time": round(decode_s / (decode_s + model_s), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=300, help="JPEG width and height (ELPV cells are 300)")
    parser.add_argument("--resolution", type=int, default=0, help="0: the default backbone's default")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the project's default (ProbeConfig)")
    args = parser.parse_args()
    load_at_start = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="featurize-bench-") as tmp:
        bake(Path(tmp))
        import torch
        from solar_cell_inspection.core import onnx_io
        from solar_cell_inspection.core.config import ProbeConfig
        from solar_cell_inspection.core.images import load_batch
        from solar_cell_inspection.modeling.onnx_export import export_onnx
        from solar_cell_inspection.modeling.pooling import featurizer

        probe = ProbeConfig()
        resolution, batch_size = args.resolution or probe.resolution, args.batch_size or probe.batch_size
        paths = [str(p) for p in write_jpegs(Path(tmp) / "images", 0, args.images, args.size, cores())]
        model = featurizer(probe.backbone, resolution=resolution).eval()
        onnx_path, export_s = timed(lambda: export_onnx(model, Path(tmp) / "f.onnx", resolution, "features"))
        session = onnx_io.session(onnx_path)

        def decode(batch: list[str]) -> np.ndarray:
            return load_batch(batch, resolution, probe.resize)

        def eager(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(images)).numpy()

        def onnx(images: np.ndarray) -> np.ndarray:
            return onnx_io.run(session, images)

        warm = decode(paths[:batch_size])  # first calls allocate: keep them out of both timings
        eager(warm), onnx(warm)
        eager_features, eager_decode_s, eager_model_s = run_batches(paths, batch_size, decode, eager)
        onnx_features, onnx_decode_s, onnx_model_s = run_batches(paths, batch_size, decode, onnx)

    n = len(paths)
    baseline, measured = figures(n, eager_decode_s, eager_model_s), figures(n, onnx_decode_s, onnx_model_s)
    print_report(
        {
            "benchmark": "featurize",
            "backbone": probe.backbone,
            "resolution": resolution,
            "resize": probe.resize,
            "batch_size": batch_size,
            "images": n,
            "jpeg_size": args.size,
            "torch_threads": torch.get_num_threads(),
            "onnx_export_seconds": round(export_s, 1),
            "baseline_torch_eager": baseline,
            "onnxruntime": measured,
            "onnxruntime_vs_torch_eager": round(measured["images_per_s"] / baseline["images_per_s"], 2),
            "onnxruntime_vs_torch_eager_model_only": round(
                measured["model_only_images_per_s"] / baseline["model_only_images_per_s"], 2
            ),
            "max_feature_difference": float(np.abs(eager_features - onnx_features).max()),
            "machine": machine(load_at_start),
        }
    )


if __name__ == "__main__":
    main()
