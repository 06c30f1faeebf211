import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from helpers.manifests import build_manifest

from {{ cookiecutter.package }}.core.config import FineTuneConfig
from {{ cookiecutter.package }}.core.images import load_batch, load_image
from {{ cookiecutter.package }}.modeling.augment import augment_batch, build_augmenter
from {{ cookiecutter.package }}.modeling.backbones import BACKBONES, get_backbone
from {{ cookiecutter.package }}.modeling.model import (
    ImageClassifier,
    load_classifier,
    new_classifier,
    predict_paths,
    save_classifier,
)
from {{ cookiecutter.package }}.modeling.pooling import feature_dim, featurizer, matrix_sqrt
from {{ cookiecutter.package }}.modeling.train import (
    ImageFiles,
    build_loaders,
    class_weights,
    fine_tune,
    fit,
    make_optimizer,
    make_schedule,
    seed_epoch,
    training_data_digest,
)

PACKAGE = "{{ cookiecutter.package }}"


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_without_weights_gives_its_feature_dimension(name):
    model = get_backbone(name, weights="none", resolution=64)
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, BACKBONES[name].feature_dim)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_bilinear_pooling_of_every_backbone_gives_unit_vectors_of_its_declared_size(name):
    model = featurizer(name, pooling="bilinear", weights="none", resolution=64)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 64, 64) * 255)
    assert out.shape == (2, feature_dim(name, "bilinear"))
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_bilinear_pooling_is_the_square_root_of_the_gram_matrix_of_the_mid_level_map():
    model = featurizer("efficientnet_lite0", pooling="bilinear", weights="none", resolution=224)
    images = torch.rand(1, 3, 224, 224) * 255
    with torch.inference_mode():
        x = model.features.normalize(images)
        for module in model.features.trunk()[: BACKBONES["efficientnet_lite0"].texture_layers]:
            x = module(x)
        out = model(images)[0].numpy()
    assert x.shape[1] == BACKBONES["efficientnet_lite0"].texture_channels
    local = x[0].flatten(1).double().numpy()  # channels x positions
    eigenvalues, eigenvectors = np.linalg.eigh(local @ local.T / local.shape[1])
    root = (eigenvectors * np.sqrt(eigenvalues.clip(0))) @ eigenvectors.T
    root = root[np.triu_indices(local.shape[0])]
    np.testing.assert_allclose(out, root / np.linalg.norm(root), atol=1e-4)


def test_matrix_sqrt_squares_back_to_its_input():
    factors = torch.randn(3, 6, 40, dtype=torch.float64)
    spd = factors @ factors.transpose(1, 2) / 40 + 0.1 * torch.eye(6, dtype=torch.float64)
    root = matrix_sqrt(spd)
    torch.testing.assert_close(root @ root, spd)
    torch.testing.assert_close(root, root.transpose(1, 2))


def test_registry_declares_each_backbone_with_its_feature_dimension():
    dims = {name: spec.feature_dim for name, spec in BACKBONES.items()}
    assert dims == {
        "efficientnet_lite0": 1280,
        "efficientnet_lite2": 1280,
        "alexnet": 4096,
        "resnet18": 512,
        "resnet34": 512,
        "resnet50": 2048,
        "resnet101": 2048,
        "resnet152": 2048,
    }
    assert {name for name, spec in BACKBONES.items() if spec.bundled} == {"efficientnet_lite0", "efficientnet_lite2"}


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="nope.pth.*'pretrained', 'none' or the path"):
        get_backbone("efficientnet_lite0", weights="nope.pth")


def test_a_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(3)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    loaded = get_backbone("resnet18", weights=str(tmp_path / "resnet18.pth"), resolution=64)
    assert torch.equal(loaded.net.conv1.weight, source.conv1.weight)


def test_offline_download_failure_names_the_bundled_backbones_and_the_file_option(tmp_path):
    closed = "http://127.0.0.1:9"  # nothing listens there: as offline as a machine gets
    env = {**os.environ, "TORCH_HOME": str(tmp_path), "HTTPS_PROXY": closed, "HTTP_PROXY": closed}
    env.update(https_proxy=closed, http_proxy=closed)
    code = f"from {PACKAGE}.modeling.backbones import get_backbone; get_backbone('resnet18')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "Could not download the pretrained resnet18 weights" in message
    assert "efficientnet_lite0, efficientnet_lite2" in message and "BACKBONE_WEIGHTS" in message


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 2), ("alexnet", 3), ("efficientnet_lite2", 4)])
def test_freeze_works_for_every_family(name, blocks):
    backbone = get_backbone(name, weights="none", resolution=64)
    backbone.freeze(blocks)
    backbone.train()
    stem, body = backbone.stem_and_blocks()
    frozen, free = [*stem, *body[:blocks]], body[blocks:]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in free for p in m.parameters())
    assert len(body) == BACKBONES[name].n_blocks


@pytest.mark.parametrize("flips", ["none", "horizontal", "all"])
def test_augmentation_keeps_shape_and_dtype(flips):
    images = np.random.default_rng(0).integers(0, 255, (4, 48, 48, 3), dtype=np.uint8)
    out = augment_batch(build_augmenter(flips), images)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("pooling", ["average", "bilinear", "multistage"])
def test_saved_classifier_round_trips(tmp_path, tiny_images, pooling):
    backbone = featurizer("efficientnet_lite0", pooling=pooling, resolution=32)
    model = ImageClassifier(backbone, torch.nn.Linear(feature_dim("efficientnet_lite0", pooling), 2)).eval()
    config = {"backbone": "efficientnet_lite0", "resolution": 32, "resize": "pad", "classes": ["a", "b"]}
    save_classifier(model, tmp_path, **config, pooling=pooling)
    loaded, config = load_classifier(tmp_path)
    paths = [str(p) for p in sorted(tiny_images.rglob("*.png"))[:3]]
    with torch.inference_mode():
        expected = model(torch.from_numpy(load_batch(paths, 32, "pad"))).numpy()
    np.testing.assert_allclose(predict_paths(loaded, paths, 32, config["resize"]), expected, atol=1e-5)
    assert config["classes"] == ["a", "b"] and config["resize"] == "pad"


def test_saving_without_the_resize_mode_is_refused(tmp_path):
    model = ImageClassifier(featurizer("efficientnet_lite0", weights="none", resolution=32), torch.nn.Linear(1280, 2))
    with pytest.raises(ValueError, match="needs 'resize'"):
        save_classifier(model, tmp_path, backbone="efficientnet_lite0", resolution=32, classes=["a", "b"])


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
    cfg = FineTuneConfig(
        resolution=32, batch_size=8, flips="horizontal", augment_strength=1.0, epochs=2, learning_rate=1e-3,
        weight_decay=0.0, label_smoothing=0.0, patience=2, resume=False,
    )  # fmt: skip
    loaders = build_loaders(manifest, ["horizontal", "vertical"], cfg)
    model = new_classifier("efficientnet_lite0", 2, 32, dropout=0.1)
    before = model.head.weight.detach().clone()
    config = {
        "backbone": "efficientnet_lite0",
        "resolution": 32,
        "resize": "stretch",
        "classes": ["horizontal", "vertical"],
    }
    history = fit(model, loaders, cfg, tmp_path, config)
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


def test_balanced_class_weights_make_each_class_count_equally():
    weights = class_weights(np.array([0, 0, 0, 1]), 2, "balanced")
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 4 / 2]))
    assert class_weights(np.array([0, 1]), 2, "none") is None


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizers_and_schedules(optimizer, schedule):
    param = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer([param], optimizer, 0.1, 0.0)
    scheduler = make_schedule(opt, schedule, 0.1, total_steps=10)
    rates = []
    for _ in range(10):
        opt.zero_grad()
        (param**2).sum().backward()
        opt.step()
        scheduler.step()
        rates.append(opt.param_groups[0]["lr"])
    assert float(param.detach().abs().max()) < 1.0, "the weights moved down the gradient"
    assert (len(set(rates)) == 1) == (schedule == "constant")


def test_a_seed_makes_a_cpu_run_repeatable(tmp_path, tiny_images):
    manifest = build_manifest(tiny_images, 0.3, 0.2)
    cfg = FineTuneConfig(resolution=32, epochs=2, batch_size=8, freeze_blocks=0, resume=False, seed=4)
    runs = [fine_tune(manifest, cfg, tmp_path / str(i)).rows for i in range(2)]
    for row in runs[0] + runs[1]:
        row.pop("seconds")
    assert runs[0] == runs[1]
    other = fine_tune(manifest, FineTuneConfig(**{**vars(cfg), "seed": 5}), tmp_path / "other").rows
    assert [r["train_loss"] for r in other] != [r["train_loss"] for r in runs[0]]


def copied_images(tiny_images, folder, count: int) -> list:
    """``count`` of the tiny images copied to ``folder``, so a test may delete them."""
    copies = [folder / f"{i}.png" for i in range(count)]
    for source, copy in zip(sorted(tiny_images.rglob("*.png")), copies):
        copy.write_bytes(source.read_bytes())
    return copies


def test_each_image_is_decoded_once_then_served_read_only_from_memory(tmp_path, tiny_images):
    """Later epochs take the decoded, resized pixels from memory: a fresh decode's pixels, even once the files are
    gone, and read-only, so augmentation can never change what the next epoch gets."""
    paths = copied_images(tiny_images, tmp_path, 4)
    dataset = ImageFiles([str(p) for p in paths], np.array([0, 1, 0, 1]), 24, "pad")
    first = [dataset[i][0].copy() for i in range(4)]
    assert all(np.array_equal(image, load_image(p, 24, "pad")) for image, p in zip(first, paths))
    for path in paths:
        path.unlink()
    again = [dataset[i] for i in range(4)]
    assert all(np.array_equal(image, before) for (image, _), before in zip(again, first))
    assert [label for _, label in again] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="read-only"):
        again[0][0][0, 0, 0] = 0


def test_a_set_over_the_memory_cap_is_decoded_every_epoch(tmp_path, tiny_images):
    paths = [str(p) for p in copied_images(tiny_images, tmp_path, 2)]
    one_image = 24 * 24 * 3
    assert ImageFiles(paths, np.array([0, 1]), 24, "pad", cache_bytes=2 * one_image).cache is not None
    dataset = ImageFiles(paths, np.array([0, 1]), 24, "pad", cache_bytes=2 * one_image - 1)
    assert dataset.cache is None
    assert np.array_equal(dataset[0][0], load_image(paths[0], 24, "pad"))
    (tmp_path / "0.png").unlink()
    with pytest.raises(FileNotFoundError):
        dataset[0]


def test_a_resumed_epoch_draws_the_batches_of_an_uninterrupted_run(tiny_images):
    """Shuffle and augmentation come from the seed and the epoch alone: epoch 2 of a loader that ran epochs 0 and 1
    (its images by then in memory) gives the very batches of a fresh loader that starts at epoch 2 from the files."""
    manifest = build_manifest(tiny_images)
    cfg = FineTuneConfig(resolution=32, batch_size=8, flips="all", augment_strength=1.0, seed=3)
    classes = ["horizontal", "vertical"]
    running, _ = build_loaders(manifest, classes, cfg)
    for epoch in range(2):
        seed_epoch(running, epoch)
        list(running)
    assert running.dataset.cached.all()
    seed_epoch(running, 2)
    uninterrupted = list(running)
    resumed, _ = build_loaders(manifest, classes, cfg)
    seed_epoch(resumed, 2)
    for (images, labels), (again, again_labels) in zip(uninterrupted, resumed, strict=True):
        assert torch.equal(images, again) and torch.equal(labels, again_labels)


def test_a_model_folder_lacking_its_settings_is_refused_not_misused(tmp_path):
    model = ImageClassifier(featurizer("efficientnet_lite0", weights="none", resolution=32), torch.nn.Linear(1280, 2))
    save_classifier(model, tmp_path, backbone="efficientnet_lite0", resolution=32, resize="stretch", classes=["a", "b"])
    config = json.loads((tmp_path / "model.json").read_text())
    del config["resize"]  # fed with the wrong preprocessing, it would predict nonsense without any error
    (tmp_path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model.json lacks resize.*Re-run them"):
        load_classifier(tmp_path)


def test_alexnet_pooling_matrices_are_rebuilt_not_saved():
    keys = get_backbone("alexnet", weights="none", resolution=96).state_dict()
    assert not any(key.startswith("net.avgpool") for key in keys)


def test_fine_tuning_starts_afresh_when_its_images_changed(tmp_path, tiny_images):
    """Resuming is for the same settings on the same images: a checkpoint trained before an image was added (or
    relabelled) is not taken as done."""
    manifest = build_manifest(tiny_images)
    cfg = FineTuneConfig(resolution=32, epochs=1, batch_size=8, freeze_blocks=0, seed=0)
    fine_tune(manifest, cfg, tmp_path)
    assert len(fine_tune(manifest, cfg, tmp_path).rows) == 1  # the same images: done, nothing trained again
    relabelled = manifest.copy()
    first = relabelled.index[relabelled.split == "train"][0]
    relabelled.loc[first, "label"] = "vertical" if relabelled.loc[first, "label"] == "horizontal" else "horizontal"
    assert training_data_digest(relabelled) != training_data_digest(manifest)
    history = fine_tune(relabelled, cfg, tmp_path)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert json.loads(saved["config"])["data"] == training_data_digest(relabelled) and len(history.rows) == 1
