"""How a backbone's feature maps become one vector per image: ``average`` or ``bilinear``.

``average``: the backbone's own pooled penultimate layer; it keeps *which* patterns occur.
``bilinear``: the mean outer product (Gram matrix) of a mid-level map; it keeps *how they
co-occur*, which tells a crack or a scratch from the surface texture around it. With a
signed square root and L2 normalisation this is the B-CNN recipe. A linear probe on
either still folds into one ``nn.Linear`` on top, so it exports and serves like any
other model.
"""

import torch
from torch import nn

from .backbones import BACKBONES, Features, get_backbone

POOLINGS = ("average", "bilinear")
MAX_CHANNELS = 128  # wider maps are projected down first: the Gram matrix grows with channels squared


class BilinearFeatures(nn.Module):
    """(N, 3, H, W) in [0, 255] -> (N, k(k+1)/2): upper triangle of the Gram matrix of ``features``'
    map after ``layers`` trunk modules, k = min(channels, MAX_CHANNELS)."""

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
        x = self.features.normalize(images)
        for module in self.features.trunk()[: self.layers]:
            x = module(x)
        x = torch.einsum("kc,nchw->nkhw", self.projection, x).flatten(2)
        gram = torch.bmm(x, x.transpose(1, 2)) / x.shape[2]
        gram = gram.flatten(1)[:, self.upper]
        gram = torch.sign(gram) * torch.sqrt(gram.abs())  # not trained through, so no guard for 0
        return nn.functional.normalize(gram, dim=1)


def featurizer(name: str, *, pooling: str = "average", weights: str = "pretrained", resolution: int | None = None):
    """Backbone ``name`` (see ``get_backbone``) giving one vector per image, pooled as asked."""
    if pooling not in POOLINGS:
        raise ValueError(f"Invalid pooling {pooling!r}. Only {', '.join(POOLINGS)} are supported.")
    features = get_backbone(name, weights=weights, resolution=resolution)
    if pooling == "average":
        return features
    spec = BACKBONES[name]
    return BilinearFeatures(features, spec.texture_layers, spec.texture_channels).eval()


def feature_dim(name: str, pooling: str = "average") -> int:
    spec = BACKBONES[name]
    if pooling == "average":
        return spec.feature_dim
    k = min(spec.texture_channels, MAX_CHANNELS)
    return k * (k + 1) // 2
