"""Pooled features of a pretrained backbone for every image, in batches, cached on disk.

On CPU the backbone runs through ONNX Runtime (several times faster than torch
eager here); on CUDA it runs in torch with channels_last and mixed precision.
The cache is keyed by backbone, weights, resolution, resize mode, pooling and each image's
sha256, so a re-run with the same inputs computes nothing.
"""

import hashlib
import uuid
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import onnx_io
from ..core.images import DEFAULT_RESIZE, load_batch
from .onnx_export import export_onnx
from .pooling import POOLINGS, check_pooling, featurizer


class FeatureCache:
    """Shards of (sha256, features) under ``root/<backbone>-<weights>-<resolution>-<resize>[-<pooling>]/``."""

    def __init__(
        self,
        root: Path,
        backbone: str,
        weights: str,
        resolution: int,
        pooling: str = "average",
        resize: str = DEFAULT_RESIZE,
    ) -> None:
        self.folder = Path(root) / feature_id(backbone, weights, resolution, pooling, resize)

    def load(self) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")):
            with np.load(shard) as data:
                found.update(zip(data["sha256"].tolist(), data["features"]))
        return found

    def add(self, sha256: list[str], features: np.ndarray) -> None:
        if len(sha256):
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f"{uuid.uuid4().hex}.tmp.npz"
            np.savez(partial, sha256=np.asarray(sha256), features=features)
            partial.rename(partial.with_name(partial.name.replace(".tmp", "")))  # readers never see half a shard


def weights_id(weights: str) -> str:
    """'pretrained' and 'none' as they are; a weights file by its content hash."""
    if weights in ("pretrained", "none"):
        return weights
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return f"file{digest[:12]}"


def feature_id(backbone: str, weights: str, resolution: int, pooling: str, resize: str = DEFAULT_RESIZE) -> str:
    """The cache folder name. The resize mode joined it when EfficientNet-Lite got its ReLU6 back, so
    folders written by the earlier, wrong network never match."""
    check_pooling(pooling)
    tag = POOLINGS[pooling]
    return f"{backbone}-{weights_id(weights)}-{resolution}-{resize}" + (f"-{tag}" if tag else "")


def featurize(
    paths: list[str],
    backbone: str,
    resolution: int,
    batch_size: int = 32,
    work_dir: Path | None = None,
    weights: str = "pretrained",
    sha256: list[str] | None = None,
    cache_dir: Path | None = None,
    pooling: str = "average",
    resize: str = DEFAULT_RESIZE,
) -> np.ndarray:
    """Features (len(paths), feature_dim) as float32, in the order of ``paths``; images made square
    as ``resize`` says (``core.images.to_square``).

    With ``sha256`` (one per path) and ``cache_dir``, cached features are reused and
    only the missing ones computed (then cached); copies of an image are computed once."""
    if cache_dir is None or sha256 is None:
        return _compute(paths, backbone, resolution, batch_size, work_dir, weights, pooling, resize)
    cache = FeatureCache(cache_dir, backbone, weights, resolution, pooling, resize)
    known = cache.load()
    missing = list(dict.fromkeys(k for k in sha256 if k not in known))
    print(
        f"features {backbone} {resolution} px {resize} {pooling}: {len(sha256) - len(missing)} cached, "
        f"{len(missing)} to compute"
    )
    if missing:
        path_of = dict(zip(sha256, paths))
        new = _compute(
            [path_of[k] for k in missing], backbone, resolution, batch_size, work_dir, weights, pooling, resize
        )
        cache.add(missing, new)
        known.update(zip(missing, new))
    return np.stack([known[k] for k in sha256]).astype(np.float32)


def featurize_rows(rows, cfg, work_dir: Path, pooling: str = "average") -> np.ndarray:
    """``featurize`` for a manifest's rows with a config's featurizer settings (backbone, weights, resolution,
    resize, batch size, feature cache): the label review and the probe share the cache this way."""
    from ..core.paths import resolve

    return featurize(
        list(rows.path),
        cfg.backbone,
        cfg.resolution,
        cfg.batch_size,
        work_dir=work_dir,
        weights=cfg.weights,
        sha256=list(rows.sha256),
        cache_dir=resolve(cfg.feature_cache),
        pooling=pooling,
        resize=cfg.resize,
    )


def _compute(
    paths: list[str],
    backbone: str,
    resolution: int,
    batch_size: int,
    work_dir: Path | None,
    weights: str,
    pooling: str,
    resize: str,
) -> np.ndarray:
    model = featurizer(backbone, pooling=pooling, weights=weights, resolution=resolution)
    if torch.cuda.is_available():
        run = _torch_runner(model)
    else:
        name = feature_id(backbone, weights, resolution, pooling, resize)
        onnx_path = Path(work_dir or ".") / f"featurizer-{name}.onnx"
        sess = onnx_io.session(export_onnx(model, onnx_path, resolution, "features"))
        run = lambda images: onnx_io.run(sess, images)  # noqa: E731
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    out = [run(load_batch(b, resolution, resize)) for b in tqdm(batches, desc=f"features {backbone}")]
    return np.concatenate(out).astype(np.float32)


def _torch_runner(model: torch.nn.Module):
    model = model.cuda().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).cuda().to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16):
            return model(batch).float().cpu().numpy()

    return run
