"""The ensemble candidate: the probe and the fine-tuned network averaged as one network, chosen on validation only,
saved, loaded, exported and scored like any candidate."""

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.core.run_folder import ENSEMBLE, FINE_TUNED, LINEAR_PROBE, RunFolder
from {{ cookiecutter.package }}.deployment.export import max_difference, write_exported_model, write_model_card
from {{ cookiecutter.package }}.deployment.predict import load_model, predict
from {{ cookiecutter.package }}.deployment.quantize import _after_trunk
from {{ cookiecutter.package }}.deployment.scoring.batch_score import score
from {{ cookiecutter.package }}.modeling.backbones import get_backbone
from {{ cookiecutter.package }}.modeling.calibration import Calibrated
from {{ cookiecutter.package }}.modeling.ensemble import choose_weight
from {{ cookiecutter.package }}.modeling.evaluate import candidates
from {{ cookiecutter.package }}.modeling.explain import heat_maps
from {{ cookiecutter.package }}.modeling.model import (
    EnsembleClassifier,
    ImageClassifier,
    load_classifier,
    save_classifier,
)
from {{ cookiecutter.package }}.modeling.steps import build_ensemble

CLASSES = ["horizontal", "vertical"]
PROBE_RESOLUTION, FINE_RESOLUTION = 48, 32  # the ensemble reads 48 px and resizes inside for the fine-tuned one


def member(resolution: int, seed: int, tta: str = "none") -> ImageClassifier:
    torch.manual_seed(seed)
    backbone = get_backbone("efficientnet_lite0", resolution=resolution)  # bundled weights: answers that vary
    return ImageClassifier(backbone, nn.Linear(1280, 2), tta=tta).eval()


def write_run(root, images) -> RunFolder:
    """A run folder with a manifest (a third of the images in each split) and both members saved."""
    run = RunFolder.open(root)
    paths = sorted(images.rglob("*.*"))
    splits = np.resize(["train", "val", "test"], len(paths))
    labels = [p.parent.name for p in paths]
    pd.DataFrame({"path": map(str, paths), "label": labels, "split": splits, "status": "ok"}).to_csv(
        run.manifest, index=False
    )
    common = {"backbone": "efficientnet_lite0", "resize": "stretch", "classes": CLASSES, "val_accuracy": 0.5}
    probe = {"resolution": PROBE_RESOLUTION, "classifier": "logistic_regression", "pooling": "average"}
    save_classifier(member(PROBE_RESOLUTION, 0), run.model(LINEAR_PROBE), **common, **probe)
    fine = {"resolution": FINE_RESOLUTION, "classifier": "fine_tuned", "tta": "horizontal"}
    save_classifier(member(FINE_RESOLUTION, 1, tta="horizontal"), run.model(FINE_TUNED), **common, **fine)
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_images):
    run = write_run(tmp_path_factory.mktemp("ensemble-run"), tiny_images)
    return run, build_ensemble(run)


@pytest.fixture(scope="module")
def images(tiny_images) -> np.ndarray:
    return load_batch(sorted(str(p) for p in tiny_images.rglob("*.png"))[:6], PROBE_RESOLUTION, "stretch")


@pytest.fixture(scope="module")
def exported(built, tmp_path_factory):
    """The ensemble as export writes the chosen model: with the chosen model's temperature on top."""
    _, fit = built
    model = Calibrated(fit.model, 1.7).eval()
    metadata = {k: fit.config[k] for k in ("classes", "resolution", "resize", "backbone", "classifier")}
    return model, write_exported_model(model, tmp_path_factory.mktemp("exported-ensemble"), metadata)


def test_the_ensemble_is_a_third_candidate_measured_as_it_predicts(built, capsys):
    run, fit = built
    ranked = {c["name"]: c for c in candidates(run.models)}
    assert set(ranked) == {LINEAR_PROBE, FINE_TUNED, ENSEMBLE}
    assert ranked[ENSEMBLE]["val_accuracy"] == fit.val_accuracy and ranked[ENSEMBLE]["classifier"] == "ensemble"
    assert fit.weight in (0.25, 0.5, 0.75) and fit.model.resolution == PROBE_RESOLUTION
    assert [m["name"] for m in fit.config["members"]] == [LINEAR_PROBE, FINE_TUNED]


def test_onnx_runtime_gives_the_torch_ensembles_probabilities(exported, images):
    model, folder = exported
    assert max_difference(model, folder, images) < 1e-4


def test_a_weight_of_one_or_zero_gives_one_members_calibrated_probabilities(built, images):
    """At the ensemble's resolution: the fine-tuned member is fed the images resized as the ensemble resizes them."""
    probe, fine = built[1].model.members
    x = torch.from_numpy(images)
    smaller = nn.functional.interpolate(x, size=(FINE_RESOLUTION,) * 2, mode="bilinear", antialias=False)
    resolutions, temperatures = [PROBE_RESOLUTION, FINE_RESOLUTION], [0.7, 2.5]
    with torch.inference_mode():
        only_fine = EnsembleClassifier([probe, fine], resolutions, temperatures, [0.0, 1.0])(x)
        only_probe = EnsembleClassifier([probe, fine], resolutions, temperatures, [1.0, 0.0])(x)
        np.testing.assert_allclose(only_fine, Calibrated(fine, 2.5)(smaller), atol=1e-6)
        np.testing.assert_allclose(only_probe, Calibrated(probe, 0.7)(x), atol=1e-6)
        assert not torch.allclose(only_fine, only_probe, atol=1e-3), "the two members must differ for this to test"


def test_the_saved_ensemble_loads_from_its_own_folder(built, images, tmp_path):
    """Members re-trained (here: removed) after the ensemble was saved leave it as it was measured."""
    run, fit = built
    copy = tmp_path / ENSEMBLE
    shutil.copytree(run.model(ENSEMBLE), copy)
    loaded, config = load_classifier(copy)
    assert isinstance(loaded, EnsembleClassifier) and config["weight"] == fit.weight
    assert loaded.temperatures == fit.model.temperatures and loaded.weights == fit.model.weights
    with torch.inference_mode():
        np.testing.assert_array_equal(loaded(torch.from_numpy(images)), fit.model(torch.from_numpy(images)))


def test_scrambled_test_labels_change_nothing_the_ensemble_chose(built, tiny_images, tmp_path):
    run, fit = built
    other = RunFolder.open(tmp_path / "scrambled")
    for name in (LINEAR_PROBE, FINE_TUNED):
        shutil.copytree(run.model(name), other.model(name))
    manifest = run.read_manifest()
    test = manifest.split == "test"
    manifest.loc[test, "label"] = manifest.label[test].map({"horizontal": "vertical", "vertical": "horizontal"})
    manifest.to_csv(other.manifest, index=False)
    again = build_ensemble(other)
    assert (again.weight, again.val_accuracy) == (fit.weight, fit.val_accuracy)
    assert [m["temperature"] for m in again.config["members"]] == [m["temperature"] for m in fit.config["members"]]


def test_a_tie_on_validation_goes_to_a_single_network(built, tmp_path):
    run, _ = built
    models = tmp_path / "models"
    for name in (LINEAR_PROBE, ENSEMBLE):
        shutil.copytree(run.model(name), models / name)
    config = json.loads((models / ENSEMBLE / "model.json").read_text())
    (models / ENSEMBLE / "model.json").write_text(json.dumps({**config, "val_accuracy": 0.5}))  # the probe's
    assert [c["name"] for c in candidates(models)] == [LINEAR_PROBE, ENSEMBLE]


def test_ties_go_to_an_even_average():
    assert choose_weight({0.25: 0.5, 0.5: 1.0, 0.75: 1.0}) == 0.5
    assert choose_weight({0.25: 0.9, 0.5: 0.8, 0.75: 0.9}) == 0.25
    assert choose_weight({0.25: 0.7, 0.5: 0.8, 0.75: 0.9}) == 0.75


def test_no_ensemble_without_both_members_or_with_different_classes(built, tmp_path):
    run, _ = built
    other = RunFolder.open(tmp_path / "one-member")
    shutil.copytree(run.model(LINEAR_PROBE), other.model(LINEAR_PROBE))
    shutil.copytree(run.model(ENSEMBLE), other.model(ENSEMBLE))  # an earlier ensemble: not of these members
    assert build_ensemble(other) is None and not other.model(ENSEMBLE).exists()
    fine, config = load_classifier(run.model(FINE_TUNED))
    save_classifier(fine, other.model(FINE_TUNED), **{**config, "classes": ["a", "b"]})
    assert build_ensemble(other) is None


def test_the_exported_ensemble_is_scored_and_explained(built, exported, tiny_images, tmp_path):
    """The scorer reads it like any exported model; int8 leaves each member's pooling and head in float; Grad-CAM
    draws the fine-tuned member's map at the ensemble's resolution."""
    (_, fit), (_, exported) = built, exported
    rows = list(csv.DictReader(score(exported, tiny_images, tmp_path / "scores.csv").open()))
    assert len(rows) == 24 and all(r["error"] == "" and r["prediction"] in CLASSES for r in rows)
    first = load_batch([rows[0]["path"]], PROBE_RESOLUTION, "stretch")
    assert abs(float(rows[0]["p_vertical"]) - predict(load_model(exported), first)[0, 1]) < 1e-5
    import onnx

    heads = [n.name for n in onnx.load(str(exported / "model.onnx")).graph.node if n.op_type == "Gemm"]
    assert len(heads) >= 2 and set(heads) <= set(_after_trunk(exported / "model.onnx"))
    overlays = heat_maps(fit.model, [rows[0]["path"]], PROBE_RESOLUTION, "stretch", [1])
    assert overlays[0].shape == (PROBE_RESOLUTION, PROBE_RESOLUTION, 3)


def test_the_model_card_names_the_ensembles_members_in_one_line(built, tmp_path):
    """Not the members' nested configs as JSON: a person reads the card."""
    _, fit = built
    essentials = ("classes", "resolution", "resize", "backbone", "classifier")
    metadata = {k: fit.config[k] for k in essentials}
    metadata["settings"] = {k: v for k, v in fit.config.items() if k not in essentials}
    card = write_model_card(tmp_path, metadata, {}).read_text()
    line = next(line for line in card.splitlines() if line.startswith("- Members: "))
    for member in fit.config["members"]:
        assert f"`{member['name']}` (share {member['weight']:g}, temperature {member['temperature']:.3f}" in line
    assert "Settings:" not in card and '"config"' not in card
