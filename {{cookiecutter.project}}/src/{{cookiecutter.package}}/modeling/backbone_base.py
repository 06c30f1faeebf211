"""What every backbone is: a module that normalises images itself and gives pooled features, with the stages
pooling reads, Grad-CAM follows and fine-tuning freezes (``modeling.backbones`` builds them by name)."""

import torch
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class Features(nn.Module):
    """Normalise, run the network up to its pooled penultimate layer: (N, 3, H, W) in [0, 255] -> (N, D).

    ``freeze(n)`` keeps the stem and the first ``n`` blocks fixed (weights and batch-norm
    statistics) while the rest fine-tunes."""

    frozen_blocks = 0
    frozen_norms = False  # every batch norm keeps its pretrained statistics (eval mode) while its weights train

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)

    def stem_and_blocks(self) -> tuple[list[nn.Module], list[nn.Module]]:
        raise NotImplementedError

    def trunk(self) -> list[nn.Module]:
        """The convolutional modules in order: applying them one after another to normalised
        images gives every intermediate feature map."""
        raise NotImplementedError

    def top(self, x: torch.Tensor) -> torch.Tensor:
        """From the last ``trunk`` map to the pooled features ``forward`` gives."""
        raise NotImplementedError

    def parameter_blocks(self) -> tuple[list[nn.Parameter], list[list[nn.Parameter]]]:
        """The stem's parameters and each block's: what ``freeze`` holds fixed and discriminative rates spread over."""
        stem, blocks = self.stem_and_blocks()
        return [p for m in stem for p in m.parameters()], [list(block.parameters()) for block in blocks]

    def freeze(self, n_blocks: int, norms: bool = False) -> None:
        """The stem and the first ``n_blocks`` fixed; with ``norms``, every batch norm's statistics too."""
        self.frozen_blocks, self.frozen_norms = n_blocks, norms
        if n_blocks:
            stem, blocks = self.parameter_blocks()
            for parameter in [*stem, *(p for block in blocks[:n_blocks] for p in block)]:
                parameter.requires_grad_(False)
        self.train(self.training)

    def forward_taps(self, images: torch.Tensor, taps: list[int], pooled: bool = True):
        """The maps after the trunk positions ``taps`` (1-based), and with ``pooled`` the pooled features too
        (computed on the same pass); without, the pass stops at the last tap."""
        x, maps = self.normalize(images), []
        trunk = self.trunk()
        for position, module in enumerate(trunk if pooled else trunk[: max(taps)], start=1):
            x = module(x)
            if position in taps:
                maps.append(x)
        return maps, (self.top(x) if pooled else None)

    def stage_taps(self, first: int) -> tuple[list[int], list[int]]:
        """The trunk positions from ``first`` on where a stage ends (the next module changes the map's channels or
        size, or the trunk ends), and the channels there: found by running a small image through the trunk once."""
        shapes = []
        with torch.no_grad():
            x = self.normalize(torch.zeros(1, 3, 64, 64))
            for module in self.trunk():
                x = module(x)
                shapes.append(tuple(x.shape[1:]))
        ends = [i + 1 for i in range(len(shapes)) if i + 1 == len(shapes) or shapes[i + 1] != shapes[i]]
        taps = [end for end in ends if end >= first]
        return taps, [shapes[end - 1][0] for end in taps]

    def tap_module(self, tap: int) -> nn.Module:
        """The module whose output is the map at ``tap`` (Grad-CAM's layer)."""
        return self.trunk()[tap - 1]

    def last_tap(self) -> int:
        """The tap of the last map the pooled features are made of."""
        return len(self.trunk())

    def cam_reshape(self):
        """How Grad-CAM turns the tapped module's output into (N, C, H, W) maps; None: it already is one."""
        return None

    def train(self, mode: bool = True) -> "Features":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        if self.frozen_norms:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def _frozen_modules(self) -> list[nn.Module]:
        if not self.frozen_blocks:
            return []
        stem, blocks = self.stem_and_blocks()
        return [*stem, *blocks[: self.frozen_blocks]]
