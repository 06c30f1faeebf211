"""Pooled features of a pretrained backbone for every image, in batches, cached on disk.

On CPU the backbone runs through ONNX Runtime (several times faster than torch
eager here); on CUDA it runs in torch with channels_last and mixed precision.
The cache is keyed by backbone, weights, resolution, resize mode, pooling and each image's
sha256, so a re-run with the same inputs computes nothing.
"""

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import onnx_io
from ..core.batching import batches
from ..core.choices import DEFAULT_RESIZE, WEIGHTS
from ..core.images import load_batch
from ..core.paths import resolve
from .onnx_export import export_onnx, worth_exporting
from .pooling import POOLINGS, check_pooling, featurizer


@dataclass(frozen=True)
class FeatureSpec:
    """What determines an image's features: the argument of ``featurize`` and, by ``key``, the cache's folder."""

    backbone: str
    resolution: int
    weights: str = "pretrained"
    pooling: str = "average"
    resize: str = DEFAULT_RESIZE
    batch_size: int = 32  # images per forward pass: changes the speed, never the features

    @classmethod
    def of(cls, cfg, pooling: str = "average") -> "FeatureSpec":
        """The featurizer settings of a config (the label review's or the probe's: they share the cache)."""
        return cls(cfg.backbone, cfg.resolution, cfg.weights, pooling, cfg.resize, cfg.batch_size)

    @property
    def key(self) -> str:
        """The cache folder name: every setting that changes the features, a weights file by its content."""
        check_pooling(self.pooling)
        tag = POOLINGS[self.pooling]
        backbone = self.backbone.replace(":", "-")  # 'timm:<model>': no colon in a file name on every system
        name = f"{backbone}-{weights_id(self.weights)}-{self.resolution}-{self.resize}"
        return name + (f"-{tag}" if tag else "")


class FeatureCache:
    """Shards of (sha256, features) under ``root/<FeatureSpec.key>/``."""

    def __init__(self, root: Path, spec: FeatureSpec) -> None:
        self.folder = Path(root) / spec.key

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
    if weights in WEIGHTS:
        return weights
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return f"file{digest[:12]}"


def featurize(
    paths: list[str],
    spec: FeatureSpec,
    sha256: list[str] | None = None,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
) -> np.ndarray:
    """Features (len(paths), feature_dim) as float32, in the order of ``paths``; images made square
    as ``spec.resize`` says (``core.images.to_square``).

    With ``sha256`` (one per path) and ``cache_dir``, cached features are reused and
    only the missing ones computed (then cached); copies of an image are computed once."""
    if cache_dir is None or sha256 is None:
        return _compute(paths, spec, work_dir)
    cache = FeatureCache(cache_dir, spec)
    known = cache.load()
    missing = list(dict.fromkeys(k for k in sha256 if k not in known))
    shown = f"{spec.backbone} {spec.resolution} px {spec.resize} {spec.pooling}"
    print(f"features {shown}: {len(sha256) - len(missing)} cached, {len(missing)} to compute")
    if missing:
        path_of = dict(zip(sha256, paths))
        new = _compute([path_of[k] for k in missing], spec, work_dir)
        cache.add(missing, new)
        known.update(zip(missing, new))
    return np.stack([known[k] for k in sha256]).astype(np.float32)


def featurize_rows(rows, cfg, work_dir: Path, pooling: str = "average") -> np.ndarray:
    """``featurize`` for a manifest's rows with a config's featurizer settings (backbone, weights, resolution,
    resize, batch size, feature cache): the label review and the probe share the cache this way."""
    spec = FeatureSpec.of(cfg, pooling)
    return featurize(list(rows.path), spec, list(rows.sha256), resolve(cfg.feature_cache), work_dir)


def _compute(paths: list[str], spec: FeatureSpec, work_dir: Path | None) -> np.ndarray:
    model = featurizer(spec.backbone, pooling=spec.pooling, weights=spec.weights, resolution=spec.resolution)
    return features_of(model, paths, spec, work_dir)


def features_of(model: torch.nn.Module, paths: list[str], spec: FeatureSpec, work_dir: Path | None) -> np.ndarray:
    """``model``'s output for every image (resolution, resize and batch size from ``spec``): through ONNX Runtime on
    CPU, in torch on CUDA or for too few images to pay for the export."""
    if torch.cuda.is_available():
        run = _torch_runner(model)
    elif not worth_exporting(len(paths), spec.resolution):
        run = _eager_runner(model)
    else:
        onnx_path = Path(work_dir or ".") / f"featurizer-{spec.key}.onnx"
        sess = onnx_io.session(export_onnx(model, onnx_path, spec.resolution, "features"))
        run = lambda images: onnx_io.run(sess, images)  # noqa: E731
    out = [
        run(load_batch(batch, spec.resolution, spec.resize))
        for batch in tqdm(batches(paths, spec.batch_size), desc=f"features {spec.backbone}")
    ]
    return np.concatenate(out).astype(np.float32)


def _eager_runner(model: torch.nn.Module):
    model = model.eval()

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(images)).float().numpy()

    return run


def _torch_runner(model: torch.nn.Module):
    model = model.cuda().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).cuda().to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16):
            return model(batch).float().cpu().numpy()

    return run
