"""Reference models for known-answer tests: each backbone with the ImageNet classifier its weights came with."""

import torchvision
from torch import nn

from {{ cookiecutter.package }}.modeling.backbones import BACKBONES, get_backbone, weights_state_dict


def imagenet_classifier(name: str, *, weights: str = "pretrained", resolution: int | None = None) -> nn.Module:
    """The featurizer with the ImageNet classifier its weights came with: (N, 3, H, W) in [0, 255] ->
    (N, 1000) logits, classes in the order of ``imagenet_classes()``.

    The known-answer check of a featurizer: a photo of a cat should come out as a cat."""
    if weights == "none":
        raise ValueError("imagenet_classifier needs pretrained weights: 'pretrained' or an ImageNet weights file.")
    state = weights_state_dict(name, weights)
    prefix = BACKBONES[name].imagenet_head
    if f"{prefix}.weight" not in state:
        raise ValueError(f"The weights for {name} hold no ImageNet classifier ({prefix}.weight): use ImageNet's.")
    head = nn.Linear(state[f"{prefix}.weight"].shape[1], state[f"{prefix}.weight"].shape[0])
    head.load_state_dict({"weight": state[f"{prefix}.weight"], "bias": state[f"{prefix}.bias"]})
    return nn.Sequential(get_backbone(name, weights=weights, resolution=resolution), head).eval()


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names in the order every backbone here predicts them (from torchvision)."""
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
