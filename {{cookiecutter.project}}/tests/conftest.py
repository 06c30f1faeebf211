"""Tiny real images made on the fly: two classes a pretrained network tells apart easily."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

from {{ cookiecutter.package }}.backbones import get_backbone
from {{ cookiecutter.package }}.export import export_model
from {{ cookiecutter.package }}.model import ImageClassifier

TINY_RESOLUTION = 32


def stripes(horizontal: bool, size: int, rng: np.random.Generator) -> Image.Image:
    """Black-and-white stripes with a random period and phase, plus noise."""
    period = int(rng.integers(4, 9))
    line = (np.arange(size) + int(rng.integers(0, period))) % period < period // 2
    pixels = np.repeat(line[:, None] if horizontal else line[None, :], size, axis=1 if horizontal else 0)
    noisy = pixels * 200.0 + rng.normal(28, 12, (size, size))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")


def write_stripes_dataset(root: Path, per_class: int = 10, size: int = 32, seed: int = 0) -> Path:
    """``root/horizontal`` and ``root/vertical``, PNG and JPEG files mixed."""
    rng = np.random.default_rng(seed)
    for label in ("horizontal", "vertical"):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            stripes(label == "horizontal", size, rng).save(folder / f"{label}_{i:02d}{suffix}")
    return root


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stripes_dataset(tmp_path_factory.mktemp("tiny_images"))


@pytest.fixture(scope="session")
def tiny_classifier() -> ImageClassifier:
    """Bundled pretrained backbone at 32 px and a random two-class head."""
    backbone = get_backbone("efficientnet_lite0", resolution=TINY_RESOLUTION)
    return ImageClassifier(backbone, nn.Linear(1280, 2)).eval()


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory, tiny_classifier: ImageClassifier) -> Path:
    metadata = {
        "classes": ["horizontal", "vertical"],
        "resolution": TINY_RESOLUTION,
        "backbone": "efficientnet_lite0",
        "classifier": "logistic_regression",
    }
    return export_model(tiny_classifier, tmp_path_factory.mktemp("model"), metadata)
