"""How a backbone's feature maps become one vector per image: ``average`` or ``bilinear``.

``average``: the backbone's own pooled penultimate layer; it keeps *which* patterns occur.
``multistage``: the average-pooled maps of every stage from the mid-level one on, beside the pooled penultimate
layer (after Head2Toe, Evci et al. 2022): a probe can then use the mid-level patterns that matter when the images
look unlike ImageNet, at the cost of one pass, as ``average`` does.
``bilinear``: the mean outer product (Gram matrix) of a mid-level map; it keeps *how they
co-occur*, which tells a crack or a scratch from the surface texture around it. Its matrix
square root and L2 normalisation follow the improved B-CNN recipe (Lin & Maji, 2017); the
root is found by Newton-Schulz iterations, only matrix products, so it exports to ONNX.
A linear probe on either still folds into one ``nn.Linear`` on top, so it exports and
serves like any other model.
"""

import torch
from torch import nn

from .backbones import Features, backbone_spec, get_backbone

# Each pooling ``core.choices`` names, and its tag in feature-cache folder names; a tag changes whenever what
# the pooling computes changes, so stale cached features are never reused.
POOLINGS = {"average": "", "bilinear": "bilinear-sqrtm", "multistage": "multistage"}
MAX_CHANNELS = 128  # wider maps are projected down first: the Gram matrix grows with channels squared
SQRT_ITERATIONS = 20  # Newton-Schulz steps: the root then matches an eigendecomposition's to ~1e-5


class BilinearFeatures(nn.Module):
    """(N, 3, H, W) in [0, 255] -> (N, k(k+1)/2): upper triangle of the Gram matrix of ``features``'
    map at tap ``layers`` (``Features.forward_taps``), k = min(channels, MAX_CHANNELS)."""

    def __init__(self, features: Features, layers: int, channels: int, seed: int = 0) -> None:
        super().__init__()
        self.features = features
        self.layers = layers
        k = min(channels, MAX_CHANNELS)
        projection = torch.eye(channels)
        if channels > k:  # a fixed random projection keeps inner products on average
            generator = torch.Generator().manual_seed(seed)
            projection = torch.randn(k, channels, generator=generator) / k**0.5
        self.register_buffer("projection", projection)
        rows, cols = torch.triu_indices(k, k)
        self.register_buffer("upper", rows * k + cols)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features.forward_taps(images, [self.layers], pooled=False)[0][0]
        with torch.autocast(x.device.type, enabled=False):  # the root needs float32, even under mixed precision
            x = torch.einsum("kc,nchw->nkhw", self.projection, x.float()).flatten(2)
            gram = torch.bmm(x, x.transpose(1, 2)) / x.shape[2]
            root = matrix_sqrt(gram).flatten(1)[:, self.upper]
        return nn.functional.normalize(root, dim=1)


class MultiStageFeatures(nn.Module):
    """(N, 3, H, W) in [0, 255] -> the average of each stage's last map (``taps``, from ``Features.stage_taps``),
    and the backbone's own pooled features, concatenated (in that order)."""

    def __init__(self, features: Features, taps: list[int]) -> None:
        super().__init__()
        self.features = features
        self.taps = taps  # the stages whose output is pooled

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps, pooled = self.features.forward_taps(images, self.taps)
        return torch.cat([*(x.mean(dim=(2, 3)) for x in maps), pooled], dim=1)


def stage_taps(features: Features, first: int) -> tuple[list[int], list[int]]:
    """Where each stage from ``first`` on ends, and its channels (``Features.stage_taps``)."""
    return features.stage_taps(first)


def matrix_sqrt(a: torch.Tensor, iterations: int = SQRT_ITERATIONS) -> torch.Tensor:
    """Square roots of a batch of positive semi-definite matrices (coupled Newton-Schulz).

    Scaled by the trace, every eigenvalue lies in [0, 1], where the iteration converges;
    the root of the scaled matrix is then scaled back."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    trace = a.diagonal(dim1=1, dim2=2).sum(1).clamp_min(torch.finfo(a.dtype).tiny).view(-1, 1, 1)
    y, z = a / trace, eye
    for _ in range(iterations):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def featurizer(name: str, *, pooling: str = "average", weights: str = "pretrained", resolution: int | None = None):
    """Backbone ``name`` (see ``get_backbone``) giving one vector per image, pooled as asked."""
    check_pooling(pooling)
    features = get_backbone(name, weights=weights, resolution=resolution)
    if pooling == "average":
        return features
    spec = backbone_spec(name)
    if pooling == "multistage":
        return MultiStageFeatures(features, features.stage_taps(spec.texture_layers)[0]).eval()
    return BilinearFeatures(features, spec.texture_layers, spec.texture_channels).eval()


def feature_dim(name: str, pooling: str = "average") -> int:
    spec = backbone_spec(name)
    if pooling == "average":
        return spec.feature_dim
    if pooling == "multistage":
        features = get_backbone(name, weights="none", resolution=spec.resolution)
        return sum(features.stage_taps(spec.texture_layers)[1]) + spec.feature_dim
    k = min(spec.texture_channels, MAX_CHANNELS)
    return k * (k + 1) // 2


def candidates(pooling: str) -> list[str]:
    """The poolings a probe tries: all of them for 'auto', else the one asked for."""
    if pooling == "auto":
        return list(POOLINGS)
    check_pooling(pooling)
    return [pooling]


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"Invalid pooling {pooling!r}. Only {', '.join(POOLINGS)} are supported.")
