"""Backbone + head as one network: float images (0-255, NCHW) in, probabilities out.

The linear probe and the fine-tuned network are both this class, so they save,
export, score and serve the same way.
"""

import json
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import onnx_io
from ..core.batching import batches
from ..core.choices import FLIPS
from ..core.images import DEFAULT_RESIZE, load_batch
from .backbones import BACKBONES, get_backbone
from .onnx_export import export_onnx
from .pooling import feature_dim, featurizer

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "model.json"


def tta_views(images: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The image and the mirrors augmentation trained on (``FLIPS``): still valid examples of the class."""
    views = [images]
    if tta in ("horizontal", "all"):
        views.append(images.flip(3))
    if tta == "all":
        views += [images.flip(2), images.flip(2).flip(3), images.transpose(2, 3)]
    return views


class ImageClassifier(nn.Module):
    """``tta`` averages the probabilities over mirrored views (test-time augmentation)."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, dropout: float = 0.0, tta: str = "none") -> None:
        super().__init__()
        if tta not in FLIPS:
            raise ValueError(f"Invalid tta {tta!r}. Only {', '.join(FLIPS)} are supported.")
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = head
        self.tta = tta

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = tta_views(images, self.tta)
        return torch.stack([torch.softmax(self.logits(v), dim=1) for v in views]).mean(dim=0)


class Logits(nn.Module):
    """A classifier's scores before the softmax, as a module of its own: what training optimises (and
    DistributedDataParallel wraps) and what Grad-CAM follows, as its authors do."""

    def __init__(self, model: ImageClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.logits(images)


def new_classifier(
    backbone: str, n_classes: int, resolution: int, dropout: float = 0.0, weights: str = "pretrained"
) -> ImageClassifier:
    """Pretrained backbone with a fresh linear head."""
    features = get_backbone(backbone, weights=weights, resolution=resolution)
    return ImageClassifier(features, nn.Linear(BACKBONES[backbone].feature_dim, n_classes), dropout)


REQUIRED = ("backbone", "resolution", "resize", "classes")  # what rebuilding and feeding a saved model needs


def save_classifier(model: ImageClassifier, folder: Path, **config: object) -> Path:
    """Weights plus the config needed to rebuild and feed the model (backbone, resolution, resize, classes, ...)."""
    for key in REQUIRED:
        if key not in config:
            raise ValueError(f"save_classifier needs {key!r} in the config to rebuild the model later.")
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    return folder


def load_classifier(folder: Path) -> tuple[ImageClassifier, dict]:
    """Rebuild what ``save_classifier`` stored, in eval mode."""
    if not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"No saved model in {folder}: run the modeling notebooks with the same RUN_DIR.")
    config = json.loads((folder / CONFIG_FILE).read_text())
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise ValueError(
            f"{folder / CONFIG_FILE} lacks {', '.join(missing)}: it was not written by this project's modeling "
            "notebooks. Re-run them with the same RUN_DIR."
        )
    pooling = config.get("pooling", "average")
    backbone = featurizer(config["backbone"], pooling=pooling, weights="none", resolution=config["resolution"])
    head = nn.Linear(feature_dim(config["backbone"], pooling), len(config["classes"]))
    model = ImageClassifier(backbone, head, tta=config.get("tta", "none"))
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval(), config


def predict_paths(
    model: ImageClassifier, paths: list[str], resolution: int, resize: str = DEFAULT_RESIZE, batch_size: int = 64
) -> np.ndarray:
    """Probabilities for image files; pass the model's own resolution and resize.

    On CUDA in torch; on CPU through ONNX Runtime, the path deployment scores on (several
    times faster than torch eager there, mirrored views included)."""
    chunks = list(batches(paths, batch_size))
    if torch.cuda.is_available():
        model = model.to("cuda").eval()
        with torch.inference_mode():
            run = lambda images: model(torch.from_numpy(images).cuda()).float().cpu().numpy()  # noqa: E731
            return np.concatenate([run(load_batch(b, resolution, resize)) for b in tqdm(chunks, desc="scoring")])
    session = _onnx_session(model, resolution)
    out = [onnx_io.run(session, load_batch(b, resolution, resize)) for b in tqdm(chunks, desc="scoring")]
    return np.concatenate(out)


_SESSIONS: "weakref.WeakKeyDictionary[ImageClassifier, dict]" = weakref.WeakKeyDictionary()


def _onnx_session(model: ImageClassifier, resolution: int):
    """The model exported to ONNX once, and its session reused while the model stays as it is (the same weights,
    views and resolution): evaluation scores validation, test and every candidate without exporting again."""
    state = (resolution, model.tta, tuple(p._version for p in model.parameters()))
    cached = _SESSIONS.get(model)
    if cached is None or cached["state"] != state:
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:  # the session holds the model once loaded
            session = onnx_io.session(export_onnx(model, Path(tmp) / "model.onnx", resolution, "probabilities"))
        cached = _SESSIONS[model] = {"state": state, "session": session}
    return cached["session"]
