import numpy as np
import pytest
import torch
from conftest import build_manifest

from {{ cookiecutter.package }}.augment import augment_batch, build_augmenter
from {{ cookiecutter.package }}.backbones import BACKBONES, get_backbone
from {{ cookiecutter.package }}.data import load_batch
from {{ cookiecutter.package }}.model import load_classifier, new_classifier, predict_paths, save_classifier
from {{ cookiecutter.package }}.train import build_loaders, fit


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_without_weights_gives_its_feature_dimension(name):
    model = get_backbone(name, weights="none", resolution=64)
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, BACKBONES[name].feature_dim)


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        get_backbone("efficientnet_lite0", weights="nope.pth")


@pytest.mark.parametrize("flips", ["none", "horizontal", "all"])
def test_augmentation_keeps_shape_and_dtype(flips):
    images = np.random.default_rng(0).integers(0, 255, (4, 48, 48, 3), dtype=np.uint8)
    out = augment_batch(build_augmenter(flips), images)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)


def test_saved_classifier_round_trips(tmp_path, tiny_images):
    model = new_classifier("efficientnet_lite0", 2, 32).eval()
    save_classifier(model, tmp_path, backbone="efficientnet_lite0", resolution=32, classes=["a", "b"])
    loaded, config = load_classifier(tmp_path)
    paths = [str(p) for p in sorted(tiny_images.rglob("*.png"))[:3]]
    with torch.inference_mode():
        expected = model(torch.from_numpy(load_batch(paths, 32))).numpy()
    np.testing.assert_allclose(predict_paths(loaded, paths, 32), expected, atol=1e-5)
    assert config["classes"] == ["a", "b"]


def test_freeze_holds_early_blocks_fixed():
    model = new_classifier("efficientnet_lite0", 2, 32)
    model.backbone.freeze(3)
    model.train()
    stem, later = model.backbone.net._blocks[2], model.backbone.net._blocks[5]
    assert not any(p.requires_grad for p in stem.parameters()) and not stem.training
    assert all(p.requires_grad for p in later.parameters()) and later.training


def test_fit_trains_and_keeps_the_best_checkpoint(tmp_path, tiny_images):
    torch.manual_seed(0)
    manifest = build_manifest(tiny_images)
    train, val = build_loaders(manifest, ["horizontal", "vertical"], 32, 8, "horizontal", seed=0)
    model = new_classifier("efficientnet_lite0", 2, 32, dropout=0.1)
    before = model.head.weight.detach().clone()
    config = {"backbone": "efficientnet_lite0", "resolution": 32, "classes": ["horizontal", "vertical"]}
    history = fit(
        model,
        train,
        val,
        epochs=2,
        learning_rate=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        patience=2,
        out_dir=tmp_path,
        config=config,
    )
    assert len(history.rows) == 2 and 1 <= history.best_epoch <= 2
    assert not torch.equal(before, model.head.weight.detach())
    loaded, saved = load_classifier(tmp_path)
    assert saved["best_epoch"] == history.best_epoch and saved["val_accuracy"] == history.best_val_accuracy


def test_test_time_augmentation_averages_the_mirrored_views():
    torch.manual_seed(0)
    model = new_classifier("efficientnet_lite0", 2, 32).eval()
    images = torch.rand(2, 3, 32, 32) * 255
    with torch.inference_mode():
        views = [images, images.flip(3), images.flip(2), images.flip(2).flip(3), images.transpose(2, 3)]
        expected = torch.stack([model(v) for v in views]).mean(0)
        model.tta = "all"
        torch.testing.assert_close(model(images), expected)
    with pytest.raises(ValueError, match="Invalid tta 'sideways'"):
        type(model)(model.backbone, model.head, tta="sideways")
