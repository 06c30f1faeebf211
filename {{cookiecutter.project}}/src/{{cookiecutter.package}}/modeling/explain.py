"""Where the model looked: Grad-CAM heat maps (the ``grad-cam`` library) over images, for any backbone and pooling.

The heat map is taken at the last feature map the classifier's pooling reads: the last trunk module for
average pooling, the module the bilinear pooling taps for bilinear pooling, so the linear probe is explained
as well as the fine-tuned network.
"""

import numpy as np
import torch
from torch import nn

from ..core.images import load_batch
from .model import Logits
from .pooling import BilinearFeatures, MultiStageFeatures


def target_layer(backbone: nn.Module) -> nn.Module:
    """The module whose output map the pooling reads."""
    if isinstance(backbone, BilinearFeatures):
        return backbone.features.tap_module(backbone.layers)
    features = backbone.features if isinstance(backbone, MultiStageFeatures) else backbone
    return features.tap_module(features.last_tap())


def reshape_transform(backbone: nn.Module):
    """How that module's output becomes (N, C, H, W) maps (a transformer's tokens), or None."""
    features = backbone.features if isinstance(backbone, (BilinearFeatures, MultiStageFeatures)) else backbone
    return features.cam_reshape()


def grad_cam(module: nn.Module, layer: nn.Module, images: np.ndarray, classes: list[int], reshape=None) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] for float images (N, 3, H, W) on the 0-255 scale, one class each."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = module.eval()
    with torch.enable_grad(), GradCAM(model=module, target_layers=[layer], reshape_transform=reshape) as cam:
        tensor = torch.from_numpy(images).requires_grad_(True)  # frozen weights still let gradients reach the map
        return cam(input_tensor=tensor, targets=[ClassifierOutputTarget(int(k)) for k in classes])


def heat_maps(model, paths: list[str], resolution: int, resize: str, classes: list[int]) -> list[np.ndarray]:
    """Each image (as the model saw it) with the heat map for its class laid over it, as RGB uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    images = load_batch(paths, resolution, resize)
    maps = grad_cam(Logits(model), target_layer(model.backbone), images, classes, reshape_transform(model.backbone))
    rgb = images.transpose(0, 2, 3, 1) / 255.0
    return [show_cam_on_image(image.astype(np.float32), heat, use_rgb=True) for image, heat in zip(rgb, maps)]
