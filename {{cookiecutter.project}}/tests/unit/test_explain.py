"""Grad-CAM heat maps (the grad-cam library) at the right layer, for every pooling."""

from pathlib import Path

import numpy as np
import pytest
from helpers.imagenet import imagenet_classes, imagenet_classifier
from PIL import Image
from torch import nn

from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.modeling.explain import grad_cam, heat_maps, target_layer
from {{ cookiecutter.package }}.modeling.model import ImageClassifier
from {{ cookiecutter.package }}.modeling.pooling import feature_dim, featurizer


@pytest.mark.slow
def test_grad_cam_finds_the_cat_and_not_the_grey_beside_it(tmp_path):
    """Known answer: the bundled network's ImageNet classifier, asked why it sees a tabby, points at the cat."""
    import skimage.data

    cat = Image.open(Path(skimage.data.data_dir) / "chelsea.png").convert("RGB")
    canvas = Image.new("RGB", (2 * cat.width, cat.height), (127, 127, 127))
    canvas.paste(cat, (0, 0))  # the cat on the left half, flat grey on the right
    canvas.save(tmp_path / "cat_left.png")
    images = load_batch([str(tmp_path / "cat_left.png")], 224, "stretch")
    classifier = imagenet_classifier("efficientnet_lite0")
    heat = grad_cam(classifier, target_layer(classifier[0]), images, [imagenet_classes().index("tabby")])[0]
    assert heat.shape == (224, 224) and 0 <= heat.min() and heat.max() <= 1
    assert heat[:, :112].mean() > 3 * heat[:, 112:].mean(), (heat[:, :112].mean(), heat[:, 112:].mean())


@pytest.mark.parametrize("pooling", ["average", "bilinear", "multistage"])
def test_heat_maps_work_for_the_probe_of_either_pooling(pooling, tiny_images):
    backbone = featurizer("efficientnet_lite0", pooling=pooling, resolution=64)
    model = ImageClassifier(backbone, nn.Linear(feature_dim("efficientnet_lite0", pooling), 2)).eval()
    paths = [str(p) for p in sorted(tiny_images.rglob("*.png"))[:3]]
    overlays = heat_maps(model, paths, 64, "stretch", [0, 1, 0])
    assert len(overlays) == 3 and all(o.shape == (64, 64, 3) and o.dtype == np.uint8 for o in overlays)
    assert target_layer(backbone) is not backbone, "the map the pooling reads, inside the trunk"
