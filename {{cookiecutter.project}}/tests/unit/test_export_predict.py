import csv
import json

import numpy as np
import pytest
from helpers.predictions import predict_image
from PIL import Image

from {{ cookiecutter.package }}.core import onnx_io
from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.deployment.export import max_difference, write_exported_model
from {{ cookiecutter.package }}.deployment.predict import load_model, predict
from {{ cookiecutter.package }}.deployment.scoring.batch_score import score


def test_onnx_matches_torch_on_real_images(tiny_classifier, exported_model, tiny_images):
    paths = sorted(str(p) for p in tiny_images.rglob("*.png"))[:4]
    images = load_batch(paths, 32)
    assert max_difference(tiny_classifier, exported_model, images) < 1e-4
    probs = predict(load_model(exported_model), images)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_predict_image_names_a_class(exported_model, tiny_images):
    answer = predict_image(load_model(exported_model), next(tiny_images.rglob("*.jpg")))
    assert answer["label"] in ("horizontal", "vertical")
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5


def test_score_folder_and_csv(exported_model, tiny_images, tmp_path):
    out = score(exported_model, tiny_images, tmp_path / "folder.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 24 and list(rows[0]) == ["path", "prediction", "p_horizontal", "p_vertical", "error"]
    listing = tmp_path / "list.csv"
    listing.write_text("path\n" + "\n".join(r["path"] for r in rows[:3]) + "\n")
    again = list(csv.DictReader(score(exported_model, listing, tmp_path / "list_scores.csv").open()))
    assert [r["p_vertical"] for r in again] == [r["p_vertical"] for r in rows[:3]]


def test_missing_model_and_bad_input_are_clear_errors(exported_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="not an exported model folder"):
        load_model(tmp_path)
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(ValueError, match="'path' column"):
        score(exported_model, tmp_path / "bad.csv", tmp_path / "out.csv")


def test_onnx_batch_axis_is_dynamic(exported_model):
    sess = onnx_io.session(exported_model / "model.onnx")
    for batch in (1, 3):
        assert onnx_io.run(sess, np.zeros((batch, 3, 32, 32), np.float32)).shape == (batch, 2)


def test_the_exported_resize_mode_is_what_scoring_uses(tiny_classifier, tmp_path):
    """A model trained on padded images is scored on padded images, by the scorer and the service alike."""
    wide = tmp_path / "images" / "wide.png"
    wide.parent.mkdir()
    pixels = np.zeros((32, 96, 3), np.uint8)
    pixels[:, :, 0] = np.arange(96, dtype=np.uint8)[None, :] * 2
    Image.fromarray(pixels).save(wide)
    metadata = {"classes": ["a", "b"], "resolution": 32, "backbone": "efficientnet_lite0", "classifier": "linear_probe"}
    answers = {}
    for mode in ("stretch", "pad"):
        model = load_model(write_exported_model(tiny_classifier, tmp_path / mode, {**metadata, "resize": mode}))
        assert model.resize == mode
        expected = predict(model, load_batch([str(wide)], 32, mode))[0]
        answers[mode] = predict_image(model, wide)["probabilities"]
        np.testing.assert_allclose(list(answers[mode].values()), expected, atol=1e-6)
        scored = next(csv.DictReader(score(tmp_path / mode, wide.parent, tmp_path / f"{mode}.csv").open()))
        assert abs(float(scored["p_b"]) - expected[1]) < 1e-5
    assert answers["stretch"] != answers["pad"]


def test_an_exported_lite_model_from_before_the_activation_fix_is_refused(exported_model, tmp_path):
    old = tmp_path / "old_model"
    old.mkdir()
    (old / "model.onnx").write_bytes((exported_model / "model.onnx").read_bytes())
    metadata = json.loads((exported_model / "model.json").read_text())
    del metadata["resize"]
    (old / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="wrong activation.*export again"):
        load_model(old)
