"""Backbone + head as one network: float images (0-255, NCHW) in, probabilities out.

The linear probe and the fine-tuned network are both this class, so they save,
export, score and serve the same way; ``EnsembleClassifier`` averages them, and is one such
network too.
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
from .backbones import backbone_spec, get_backbone
from .onnx_export import export_onnx, worth_exporting
from .pooling import feature_dim, featurizer

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "model.json"
FLOOR = 1e-12  # smallest probability taken to the log: the same in numpy (``calibration``) and in the networks


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


def tempered(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities with their log divided by ``temperature`` before the softmax: temperature scaling
    (``calibration``), which never changes the predicted class."""
    return torch.softmax(torch.log(probs.clamp_min(FLOOR)) / temperature, dim=1)


class EnsembleClassifier(nn.Module):
    """Classifiers' calibrated probabilities averaged with fixed weights, as one network (``modeling.ensemble``).

    It reads images at ``resolution``, its largest member's, and resizes them inside for a member that reads a
    smaller size (bilinear, without antialiasing: it exports to ONNX); each member's temperature, fitted on
    validation, is folded in. ``backbone`` is the last member's: the one Grad-CAM explains."""

    def __init__(
        self, members: list[nn.Module], resolutions: list[int], temperatures: list[float], weights: list[float]
    ) -> None:
        super().__init__()
        if not len(members) == len(resolutions) == len(temperatures) == len(weights) or not members:
            raise ValueError("An ensemble needs one resolution, temperature and weight per member, and a member.")
        self.members = nn.ModuleList(members)
        self.resolutions = [int(r) for r in resolutions]
        self.temperatures = [float(t) for t in temperatures]
        self.weights = [float(w) for w in weights]
        self.resolution = max(self.resolutions)

    @property
    def backbone(self) -> nn.Module:
        return self.members[-1].backbone

    def resized(self, images: torch.Tensor, resolution: int) -> torch.Tensor:
        """``images`` (at the ensemble's resolution) at a member's."""
        if resolution == self.resolution:
            return images
        size = (resolution, resolution)
        return nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=False)

    def member_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each member's own probabilities (mirrored views included, before its temperature), as it is fed here."""
        return [member(self.resized(images, r)) for member, r in zip(self.members, self.resolutions)]

    def average(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """The ensemble's probabilities from its members' own (``member_outputs``): each tempered, then weighted."""
        parts = [w * tempered(p, t) for p, t, w in zip(outputs, self.temperatures, self.weights)]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.average(self.member_outputs(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The log of the average of the members' one-view probabilities: what Grad-CAM follows (as
        ``ImageClassifier.logits``, without the mirrored views)."""
        one_view = [torch.softmax(m.logits(self.resized(images, r)), 1) for m, r in zip(self.members, self.resolutions)]
        return torch.log(self.average(one_view).clamp_min(FLOOR))


def new_classifier(
    backbone: str, n_classes: int, resolution: int, dropout: float = 0.0, weights: str = "pretrained"
) -> ImageClassifier:
    """Pretrained backbone with a fresh linear head."""
    features = get_backbone(backbone, weights=weights, resolution=resolution)
    return ImageClassifier(features, nn.Linear(backbone_spec(backbone).feature_dim, n_classes), dropout)


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


def load_classifier(folder: Path) -> tuple[nn.Module, dict]:
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
    model = build_classifier(config)
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval(), config


def build_classifier(config: dict) -> nn.Module:
    """The network a saved config describes, before its weights are loaded: a classifier, or an ensemble of the
    classifiers its ``members`` describe (each with its own config, temperature and weight)."""
    if "members" in config:
        members = config["members"]
        return EnsembleClassifier(
            [build_classifier(m["config"]) for m in members],
            [m["config"]["resolution"] for m in members],
            [m["temperature"] for m in members],
            [m["weight"] for m in members],
        )
    pooling = config.get("pooling", "average")
    backbone = featurizer(config["backbone"], pooling=pooling, weights="none", resolution=config["resolution"])
    head = nn.Linear(feature_dim(config["backbone"], pooling), len(config["classes"]))
    return ImageClassifier(backbone, head, tta=config.get("tta", "none"))


def predict_paths(
    model: ImageClassifier, paths: list[str], resolution: int, resize: str = DEFAULT_RESIZE, batch_size: int = 64
) -> np.ndarray:
    """Probabilities for image files; pass the model's own resolution and resize.

    On CUDA in torch; on CPU through ONNX Runtime, the path deployment scores on (several
    times faster than torch eager there, mirrored views included), unless there are too few images to pay for
    the export (``worth_exporting``)."""
    chunks = list(batches(paths, batch_size))
    on_cuda = torch.cuda.is_available()
    if on_cuda or not worth_exporting(len(paths), resolution):
        device = "cuda" if on_cuda else "cpu"
        model = model.to(device).eval()
        with torch.inference_mode():
            run = lambda images: model(torch.from_numpy(images).to(device)).float().cpu().numpy()  # noqa: E731
            return np.concatenate([run(load_batch(b, resolution, resize)) for b in tqdm(chunks, desc="scoring")])
    session = _onnx_session(model, resolution)
    out = [onnx_io.run(session, load_batch(b, resolution, resize)) for b in tqdm(chunks, desc="scoring")]
    return np.concatenate(out)


_SESSIONS: "weakref.WeakKeyDictionary[ImageClassifier, dict]" = weakref.WeakKeyDictionary()


def _onnx_session(model: ImageClassifier, resolution: int):
    """The model exported to ONNX once, and its session reused while the model stays as it is (the same weights,
    views and resolution): evaluation scores validation, test and every candidate without exporting again."""
    views = tuple(m.tta for m in model.modules() if isinstance(m, ImageClassifier))  # an ensemble's members' too
    state = (resolution, views, tuple(p._version for p in model.parameters()))
    cached = _SESSIONS.get(model)
    if cached is None or cached["state"] != state:
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:  # the session holds the model once loaded
            session = onnx_io.session(export_onnx(model, Path(tmp) / "model.onnx", resolution, "probabilities"))
        cached = _SESSIONS[model] = {"state": state, "session": session}
    return cached["session"]
