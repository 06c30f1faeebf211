"""Backbone + head as one network: float images (0-255, NCHW) in, probabilities out."""

import json
from pathlib import Path

import torch
from torch import nn

from .backbones import get_backbone


class ImageClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.backbone(images)), dim=1)


def save_head(head: nn.Linear, folder: Path, **config: object) -> None:
    """Store the head's weights with the config needed to rebuild the whole model."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), folder / "head.pt")
    (folder / "head.json").write_text(json.dumps(config, indent=2))


def load_classifier(folder: Path) -> tuple[ImageClassifier, dict]:
    """Rebuild backbone + head from ``save_head``'s folder."""
    config = json.loads((folder / "head.json").read_text())
    state = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
    head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    backbone = get_backbone(
        config["backbone"], weights=config.get("weights", "bundled"), resolution=config["resolution"]
    )
    return ImageClassifier(backbone, head).eval(), config
