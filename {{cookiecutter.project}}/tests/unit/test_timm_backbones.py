"""Any timm model as a backbone, proven offline against timm itself: one model per family (ConvNeXt, MobileNetV3,
RegNet, ViT with a patch embedding), built by timm with random weights, saved to a file and loaded through
``BACKBONE_WEIGHTS``; our pooled features equal timm's ``forward_head(forward_features(x), pre_logits=True)``,
and ONNX Runtime equals torch on the exported featurizer."""

import time

import numpy as np
import pytest
import timm
import torch
from helpers.models import timm_weights

from {{ cookiecutter.package }}.core import onnx_io
from {{ cookiecutter.package }}.core.config import FineTuneConfig, ProbeConfig
from {{ cookiecutter.package }}.core.errors import ConfigError
from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.modeling import timm_backbones
from {{ cookiecutter.package }}.modeling.backbones import backbone_spec, get_backbone
from {{ cookiecutter.package }}.modeling.explain import grad_cam, reshape_transform, target_layer
from {{ cookiecutter.package }}.modeling.model import ImageClassifier, Logits
from {{ cookiecutter.package }}.modeling.onnx_export import export_onnx
from {{ cookiecutter.package }}.modeling.pooling import feature_dim, featurizer
from {{ cookiecutter.package }}.modeling.train import param_group_rates
from {{ cookiecutter.package }}.orchestration.cli import main

FAMILIES = ["convnext_atto", "mobilenetv3_small_050", "regnetx_002", "vit_tiny_patch16_224"]
RESOLUTION = 64  # small: a ViT built for 64 px has 4 x 4 patches (timm resamples its position embeddings)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("timm-weights")
    return {name: str(timm_weights(name, folder)) for name in FAMILIES}


@pytest.fixture(scope="module")
def stage_featurizers(weights) -> dict:
    """Each family's multistage featurizer (its ``features`` the backbone), built once: a ViT takes seconds."""
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = featurizer(f"timm:{name}", pooling="multistage", weights=weights[name], resolution=RESOLUTION)
        return built[name]

    return get


@pytest.fixture(scope="module")
def images(tiny_images) -> np.ndarray:
    return load_batch(sorted(str(p) for p in tiny_images.rglob("*.png"))[:2], RESOLUTION)


def timm_reference(name: str, path: str) -> torch.nn.Module:
    """timm's own model with the same file, as a timm user builds it."""
    size = {"img_size": RESOLUTION} if timm.models.get_pretrained_cfg(name).fixed_input_size else {}
    cfg = {"file": path}
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=cfg, **size).eval()


def timm_input(model: torch.nn.Module, images: np.ndarray) -> torch.Tensor:
    """0-255 images normalised as timm's data config for the model says."""
    data = timm.data.resolve_data_config(model=model)
    mean, std = (torch.tensor(data[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    return (torch.from_numpy(images) / 255 - mean) / std


def timm_features(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.forward_head(model.forward_features(timm_input(model, images)), pre_logits=True).numpy()


@pytest.mark.parametrize("name", FAMILIES)
def test_pooled_features_equal_timms_pre_logits_and_onnx_runtime_equals_torch(
    name, weights, stage_featurizers, images, tmp_path
):
    backbone = f"timm:{name}"
    expected = timm_features(timm_reference(name, weights[name]), images)
    model = stage_featurizers(name)  # the backbone (``model.features``) and its stage maps
    with torch.inference_mode():
        ours = model.features(torch.from_numpy(images)).numpy()
        stages = model(torch.from_numpy(images)).numpy()
    assert ours.shape == (2, backbone_spec(backbone).feature_dim)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    assert stages.shape == (2, feature_dim(backbone, "multistage"))
    np.testing.assert_allclose(stages[:, -ours.shape[1] :], ours, atol=1e-6, rtol=0)  # the stage maps' pass, too
    session = onnx_io.session(export_onnx(model, tmp_path / "features.onnx", RESOLUTION, "features"))
    np.testing.assert_allclose(onnx_io.run(session, images), stages, atol=1e-4, rtol=1e-4)


def test_bilinear_pooling_is_the_gram_root_of_timms_middle_stage(weights, images):
    """regnetx_002's middle stage (56 channels, no projection) against an eigendecomposition of timm's own map."""
    name = "regnetx_002"
    reference = timm_reference(name, weights[name])
    with torch.inference_mode():
        stage = reference.forward_intermediates(timm_input(reference, images), indices=[2], intermediates_only=True)[0]
        ours = featurizer(f"timm:{name}", pooling="bilinear", weights=weights[name], resolution=RESOLUTION)(
            torch.from_numpy(images)
        )
    assert stage.shape[1] == backbone_spec(f"timm:{name}").texture_channels == 56
    x = stage.double().flatten(2)
    values, vectors = torch.linalg.eigh(x @ x.transpose(1, 2) / x.shape[2])
    root = vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(1, 2)
    rows, cols = torch.triu_indices(56, 56)
    expected = torch.nn.functional.normalize(root[:, rows, cols], dim=1).float()
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-4)


@pytest.mark.parametrize("name", ["convnext_atto", "vit_tiny_patch16_224"])
def test_freezing_holds_the_stem_and_the_first_stages_and_rates_spread_over_the_rest(name, weights):
    features = get_backbone(f"timm:{name}", weights=weights[name], resolution=RESOLUTION)
    stem, blocks = features.parameter_blocks()
    assert len(blocks) == backbone_spec(f"timm:{name}").n_blocks == len(features.net.feature_info)
    every = [*stem, *(p for block in blocks for p in block)]
    assert len({id(p) for p in every}) == len(every), "each parameter in one block"
    features.freeze(2)
    frozen = {id(p) for p in [*stem, *blocks[0], *blocks[1]]}
    assert all(not p.requires_grad for p in features.parameters() if id(p) in frozen)
    assert all(p.requires_grad for p in features.parameters() if id(p) not in frozen)
    features.train()
    assert not features.net.get_submodule(features.about.stages[0]["module"]).training
    assert features.net.get_submodule(features.about.stages[-1]["module"]).training
    model = ImageClassifier(features, torch.nn.Linear(backbone_spec(f"timm:{name}").feature_dim, 2))
    groups = param_group_rates(model, 1e-3, 0.1)
    assert len(groups) == len(blocks) - 2 + 1 and groups[0]["lr"] < groups[-2]["lr"] < groups[-1]["lr"] == 1e-3


@pytest.mark.parametrize("name", ["convnext_atto", "vit_tiny_patch16_224"])
def test_grad_cam_finds_a_map_on_convolutions_and_on_transformer_tokens(name, stage_featurizers, images):
    features = stage_featurizers(name).features
    model = ImageClassifier(features, torch.nn.Linear(backbone_spec(f"timm:{name}").feature_dim, 2)).eval()
    heat = grad_cam(Logits(model), target_layer(features), images, [0, 1], reshape_transform(features))
    assert heat.shape == (2, RESOLUTION, RESOLUTION)
    assert np.isfinite(heat).all() and heat.std() > 0, "gradients reached the map"


def test_limits_of_the_named_model_are_checked_up_front():
    vit = "timm:vit_tiny_patch16_224"
    with pytest.raises(ConfigError, match="no multiple of timm:vit_tiny_patch16_224's patch size 16: use e.g. 96 or"):
        timm_backbones.check_config(ProbeConfig(backbone=vit, resolution=100, weights="none"))
    with pytest.raises(ConfigError, match="FREEZE_BLOCKS=5 must be 0 to 4 for timm:convnext_atto"):
        timm_backbones.check_config(FineTuneConfig(backbone="timm:convnext_atto", freeze_blocks=5, weights="none"))
    timm_backbones.check_config(FineTuneConfig(backbone=vit, resolution=64, freeze_blocks=12, weights="none"))
    assert not backbone_spec(vit).rescales, "position embeddings fit one size: prediction stays at it"
    with pytest.raises(ConfigError, match="Invalid backbone 'timm:Bad name'"):
        ProbeConfig(backbone="timm:Bad name")


def test_an_unknown_model_or_tag_names_close_ones():
    with pytest.raises(ConfigError, match="no model 'convnext_tinny' .close names: convnext_tiny"):
        timm_backbones.pretrained_cfg("timm:convnext_tinny")
    with pytest.raises(ConfigError, match="no weights tagged 'nope' for convnext_atto; its tags: d2_in1k"):
        timm_backbones.pretrained_cfg("timm:convnext_atto.nope")


def test_the_model_card_names_timms_weights_and_licence(weights):
    note = timm_backbones.weights_note("timm:convnext_atto")
    assert note == (
        "timm convnext_atto.d2_in1k weights from https://huggingface.co/timm/convnext_atto.d2_in1k/resolve/main/"
        "model.safetensors, licence apache-2.0"
    )
    assert weights["convnext_atto"] in timm_backbones.weights_note("timm:convnext_atto", weights["convnext_atto"])


@pytest.mark.parametrize("backbone", ["timm:not_a_model", "timm:convnext_atto"])
def test_the_pipeline_refuses_in_seconds_with_one_line_and_writes_nothing(backbone, tmp_path, monkeypatch, capsys):
    """An unknown model, and a known one whose weights are neither cached nor reachable (a hub that refuses
    connections, empty caches): exit 2 before any notebook, one line naming the model and the fix."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "run"
    started = time.monotonic()
    code = main(["pipeline", "--profile", "smoke", "--out", str(out), "-p", "BACKBONE", backbone])
    assert time.monotonic() - started < 20
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    if backbone == "timm:not_a_model":
        assert "timm:not_a_model" in lines[0] and "backbones 'PATTERN'" in lines[0]
    else:
        assert f"No pretrained weights for BACKBONE='{backbone}'" in lines[0]
        assert "127.0.0.1 cannot be reached" in lines[0] and "set BACKBONE_WEIGHTS" in lines[0]
        assert "http://127.0.0.1:9/timm/convnext_atto.d2_in1k/resolve/main/model.safetensors" in lines[0]
    assert not out.exists()


def test_backbones_lists_what_can_be_named(capsys):
    assert main(["backbones"]) == 0
    assert "efficientnet_lite0" in capsys.readouterr().out
    assert main(["backbones", "convnext_atto*"]) == 0
    listed = capsys.readouterr().out
    assert "timm:convnext_atto.d2_in1k" in listed and "apache-2.0" in listed
