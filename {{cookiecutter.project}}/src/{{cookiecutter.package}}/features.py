"""Pooled features of a pretrained backbone for every image, in batches.

On CPU the backbone runs through ONNX Runtime (several times faster than torch
eager here); on CUDA it runs in torch with channels_last and mixed precision.
"""

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import onnx_io
from .backbones import get_backbone
from .data import load_batch


def featurize(
    paths: list[str],
    backbone: str,
    resolution: int,
    batch_size: int = 32,
    work_dir: Path | None = None,
    weights: str = "bundled",
) -> np.ndarray:
    """Features (len(paths), feature_dim) as float32, in the order of ``paths``."""
    model = get_backbone(backbone, weights=weights, resolution=resolution)
    if torch.cuda.is_available():
        run = _torch_runner(model)
    else:
        onnx_path = Path(work_dir or ".") / f"featurizer-{backbone}-{resolution}.onnx"
        sess = onnx_io.session(onnx_io.export_onnx(model, onnx_path, resolution, "features"))
        run = lambda images: onnx_io.run(sess, images)  # noqa: E731
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    out = [run(load_batch(b, resolution)) for b in tqdm(batches, desc=f"features {backbone}")]
    return np.concatenate(out).astype(np.float32)


def _torch_runner(model: torch.nn.Module):
    model = model.cuda().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).cuda().to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16):
            return model(batch).float().cpu().numpy()

    return run
