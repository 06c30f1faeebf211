"""The tiny model of these tests: the bundled pretrained backbone at 32 px under a two-class head, and what export
records for it."""

from pathlib import Path

from torch import nn

from {{ cookiecutter.package }}.modeling.backbones import get_backbone
from {{ cookiecutter.package }}.modeling.model import ImageClassifier

TINY_RESOLUTION = 32

# What export records for the tiny models of these tests: the stripes' classes, 32 px, stretched.
TINY_METADATA = {
    "classes": ["horizontal", "vertical"],
    "resolution": TINY_RESOLUTION,
    "resize": "stretch",
    "backbone": "efficientnet_lite0",
    "classifier": "logistic_regression",
}


def build_tiny_classifier() -> ImageClassifier:
    """Bundled pretrained backbone at 32 px and a random two-class head, in eval mode."""
    backbone = get_backbone("efficientnet_lite0", resolution=TINY_RESOLUTION)
    return ImageClassifier(backbone, nn.Linear(1280, 2)).eval()


def timm_weights(model: str, folder: Path, seed: int = 0) -> Path:
    """A timm model's weights, random (the pretrained ones download), saved as a file ``BACKBONE_WEIGHTS`` takes."""
    import timm
    import torch

    path = folder / f"{model}.pth"
    if not path.is_file():
        torch.manual_seed(seed)
        torch.save(timm.create_model(model, pretrained=False).state_dict(), path)
    return path
