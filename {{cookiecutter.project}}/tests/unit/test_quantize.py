"""int8: the statically quantized model answers as fp32 does, is really int8, and is kept only if it holds accuracy."""

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.images import write_stripes_dataset
from helpers.models import TINY_METADATA, TINY_RESOLUTION
from helpers.predictions import predict_image
from onnx import TensorProto
from PIL import Image
from torch import nn

from {{ cookiecutter.package }}.core.config import ConfigError, DeployConfig
from {{ cookiecutter.package }}.core.images import image_files, load_batch
from {{ cookiecutter.package }}.deployment.export import write_exported_model, write_model_card
from {{ cookiecutter.package }}.deployment.predict import (
    INT8_MODEL_FILE,
    METADATA_FILE,
    MODEL_FILE,
    load_model,
    predict,
)
from {{ cookiecutter.package }}.deployment.quantize import calibration_sample, quantize, quantize_checked
from {{ cookiecutter.package }}.modeling.model import ImageClassifier

CLASSES = ["horizontal", "vertical"]


def labelled(folder: Path) -> tuple[list[str], list[str]]:
    paths = [str(p) for p in image_files(folder)]
    return paths, [Path(p).parent.name for p in paths]


def copy_model(model_dir: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for name in (MODEL_FILE, METADATA_FILE):
        shutil.copy(model_dir / name, to / name)
    return to


@pytest.fixture(scope="module")
def stripes_model(tmp_path_factory, tiny_classifier, tiny_images) -> Path:
    """The tiny backbone with a head that tells the stripes apart (from the two classes' mean features), exported.

    Its answers are confident, so int8 errors show as changed labels, not as coin flips near 0.5."""
    paths, labels = labelled(tiny_images)
    with torch.inference_mode():
        features = tiny_classifier.backbone(torch.from_numpy(load_batch(paths, TINY_RESOLUTION)))
    is_vertical = torch.tensor([label == "vertical" for label in labels])
    means = features[~is_vertical].mean(0), features[is_vertical].mean(0)
    direction = means[1] - means[0]
    head = nn.Linear(features.shape[1], 2)
    with torch.no_grad():
        scale = 8.0 / float(direction @ direction)  # logits about +-4 at the class means
        head.weight.copy_(torch.stack([-direction, direction]) * scale / 2)
        offset = float(direction @ (means[0] + means[1]) / 2) * scale / 2
        head.bias.copy_(torch.tensor([offset, -offset]))
    model = ImageClassifier(tiny_classifier.backbone, head).eval()
    metadata = {**TINY_METADATA, "classes": CLASSES, "classifier": "linear_probe"}
    return write_exported_model(model, tmp_path_factory.mktemp("stripes_model"), metadata)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> tuple[list[str], list[str]]:
    """Other stripes (another seed): the validation images of these tests."""
    return labelled(write_stripes_dataset(tmp_path_factory.mktemp("held_out"), seed=1))


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, stripes_model, tiny_images) -> Path:
    model_dir = copy_model(stripes_model, tmp_path_factory.mktemp("int8") / "model")
    quantize(model_dir, calibration_sample(labelled(tiny_images)[0], 12))
    return model_dir


def test_int8_answers_as_fp32_does_on_held_out_images(int8_model, held_out):
    images = load_batch(held_out[0], TINY_RESOLUTION)
    fp32, int8 = (predict(load_model(int8_model, precision=p), images) for p in ("fp32", "int8"))
    assert (fp32.argmax(1) == np.array([CLASSES.index(label) for label in held_out[1]])).all(), "fp32 is right"
    # Measured: the same 24 labels, probabilities at most 0.034 apart (fp32's range from 0.85 to 1).
    assert (int8.argmax(1) == fp32.argmax(1)).sum() >= 23
    assert np.abs(int8 - fp32).max() < 0.1
    np.testing.assert_allclose(int8.sum(axis=1), 1.0, atol=1e-5)


def test_the_int8_file_really_is_int8_and_smaller(int8_model):
    graph = onnx.load(str(int8_model / INT8_MODEL_FILE)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    weights = {init.name: init.data_type for init in graph.initializer}
    dequantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(weights.get(dequantized.get(conv.input[1])) == TensorProto.INT8 for conv in convs)
    head = next(node for node in graph.node if node.op_type == "Gemm")
    assert weights[head.input[1]] == TensorProto.FLOAT, "pooling and head stay float"
    fp32_size, int8_size = ((int8_model / name).stat().st_size for name in (MODEL_FILE, INT8_MODEL_FILE))
    assert int8_size < 0.4 * fp32_size, (fp32_size, int8_size)  # measured: 3.8 MB vs 13.5 MB


def test_the_gate_keeps_an_int8_model_that_holds_accuracy(stripes_model, tiny_images, held_out, tmp_path):
    model_dir = copy_model(stripes_model, tmp_path / "model")
    record = quantize_checked(model_dir, labelled(tiny_images)[0][::2], *held_out)
    assert record["kept"] and (model_dir / INT8_MODEL_FILE).is_file()
    assert record["val_accuracy_fp32"] == 1.0 and record["val_accuracy_int8"] >= 1.0 - 0.005
    assert record["calibration_images"] == 12 and "kept" in record["reason"]
    assert {p.name for p in model_dir.iterdir()} == {MODEL_FILE, METADATA_FILE, INT8_MODEL_FILE}
    assert load_model(model_dir, precision="int8").precision == "int8"


def test_the_gate_refuses_an_int8_model_that_loses_accuracy(stripes_model, int8_model, held_out, tmp_path):
    """Calibrated on blank grey images, the activation ranges are far too narrow and int8 really loses accuracy:
    no int8 file is left, not even an earlier export's."""
    model_dir = copy_model(stripes_model, tmp_path / "model")
    shutil.copy(int8_model / INT8_MODEL_FILE, model_dir / INT8_MODEL_FILE)  # an earlier export's, good one
    blank = []
    for i in range(4):
        blank.append(tmp_path / f"grey_{i}.png")
        Image.new("RGB", (TINY_RESOLUTION, TINY_RESOLUTION), (128 + i, 128, 128)).save(blank[-1])
    record = quantize_checked(model_dir, [str(p) for p in blank], *held_out)
    assert not record["kept"], record
    assert record["val_accuracy_fp32"] == 1.0 and record["val_accuracy_int8"] < 0.9  # measured: 0.5
    assert "more than 0.5 point below" in record["reason"] and "use fp32" in record["reason"]
    assert {p.name for p in model_dir.iterdir()} == {MODEL_FILE, METADATA_FILE}
    with pytest.raises(FileNotFoundError, match=f"has no {INT8_MODEL_FILE}.*--precision fp32"):
        load_model(model_dir, precision="int8")


def test_the_gate_needs_images_to_check_with(stripes_model, tiny_images, tmp_path):
    model_dir = copy_model(stripes_model, tmp_path / "model")
    record = quantize_checked(model_dir, labelled(tiny_images)[0], [], [])
    assert not record["kept"] and "no validation images" in record["reason"]
    with pytest.raises(ValueError, match="No calibration images"):
        quantize(model_dir, [])
    assert {p.name for p in model_dir.iterdir()} == {MODEL_FILE, METADATA_FILE}


def work_folders(root: Path) -> list[Path]:
    return [path.relative_to(root) for path in root.rglob("*int8-*")]


def test_a_failing_quantizer_leaves_fp32_alone_and_says_why(stripes_model, tiny_images, held_out, tmp_path):
    """int8 is optional: a calibration image that cannot be read stops the quantizer, not the export. The quantizer
    works beside the model folder, never in it: the folder that gets registered holds no half-done files even if
    the export is killed. The calibration "image" is a named pipe, so the work folder can be looked at while the
    quantizer waits on it; then it gets bytes that are not an image."""
    model_dir = copy_model(stripes_model, tmp_path / "export" / "model")
    stall = tmp_path / "stall.png"
    os.mkfifo(stall)
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(quantize_checked, model_dir, [str(stall), *labelled(tiny_images)[0][:3]], *held_out)
        try:
            deadline = time.monotonic() + 120
            while not (work := work_folders(model_dir.parent)) and time.monotonic() < deadline and not outcome.done():
                time.sleep(0.05)
        finally:
            with open(stall, "wb") as f:  # lets the quantizer go on, whatever was seen
                f.write(b"not an image")
        record = outcome.result(timeout=120)
    assert len(work) == 1 and work[0].parent == Path("."), f"work folder {work} is not beside the model folder"
    assert not record["kept"] and record["val_accuracy_int8"] is None, record
    assert record["reason"].startswith("int8 quantization failed (") and "use fp32" in record["reason"], record
    assert "\n" not in record["reason"] and str(stall) in record["reason"], record
    assert {p.name for p in model_dir.iterdir()} == {MODEL_FILE, METADATA_FILE}
    assert not work_folders(model_dir.parent), "the work folder is removed"


def test_load_model_int8_predicts_on_the_shared_model(exported_model, tiny_images, tmp_path):
    model_dir = copy_model(exported_model, tmp_path / "model")
    paths = labelled(tiny_images)[0]
    quantize(model_dir, paths[::2])
    model = load_model(model_dir, precision="int8")
    assert model.precision == "int8"
    answer = predict_image(model, paths[1])
    expected = predict_image(load_model(model_dir), paths[1])
    assert answer["label"] in CLASSES and abs(sum(answer["probabilities"].values()) - 1) < 1e-5
    # Its head is random, so probabilities sit near 0.5; measured at most 0.011 apart over the 24 images.
    assert max(abs(answer["probabilities"][c] - expected["probabilities"][c]) for c in CLASSES) < 0.05


def test_a_missing_int8_model_is_a_clear_error(exported_model):
    with pytest.raises(FileNotFoundError, match=f"has no {INT8_MODEL_FILE}: export writes.*--precision fp32"):
        load_model(exported_model, precision="int8")


def test_a_new_export_removes_the_old_int8_model(tiny_classifier, int8_model, tmp_path):
    model_dir = copy_model(int8_model, tmp_path / "model")
    shutil.copy(int8_model / INT8_MODEL_FILE, model_dir / INT8_MODEL_FILE)
    metadata = load_model(model_dir).metadata
    write_exported_model(tiny_classifier, model_dir, metadata)
    assert not (model_dir / INT8_MODEL_FILE).exists()


def test_the_model_card_shows_both_accuracies(tmp_path):
    metadata = {"classes": CLASSES, "resolution": 32, "resize": "stretch", "backbone": "b", "classifier": "c"}
    refused = {
        "kept": False,
        "val_accuracy_fp32": 0.8545,
        "val_accuracy_int8": 0.838,
        "calibration_images": 64,
        "reason": "int8 validation accuracy 0.8380 is more than 0.5 point below fp32's 0.8545 (426 images): not kept",
    }
    card = write_model_card(tmp_path, {**metadata, "int8": refused}, {}).read_text()
    assert "| fp32 | 0.8545 | `model.onnx` |" in card and "| int8 | 0.8380 | not kept |" in card
    assert "calibrated on 64 training images" in card and "- int8 validation accuracy 0.8380 is more" in card
    kept = {**refused, "kept": True, "val_accuracy_int8": 0.8521}
    card = write_model_card(tmp_path, {**metadata, "int8": kept}, {}).read_text()
    assert f"| int8 | 0.8521 | `{INT8_MODEL_FILE}`, kept |" in card
    assert "INT8=False" in write_model_card(tmp_path, {**metadata, "int8": None}, {}).read_text()


def test_calibration_images_are_a_seeded_sample():
    paths = [f"image_{i}.png" for i in range(100)]
    sample = calibration_sample(paths, 10)
    assert len(set(sample)) == 10 and set(sample) <= set(paths) and sample == calibration_sample(paths, 10)
    assert calibration_sample(paths, 10, seed=1) != sample
    assert calibration_sample(paths[:5], 10) == paths[:5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calibration_images": 0}, "CALIBRATION_IMAGES=0 must be at least 1.*INT8=False"),
        ({"int8": "yes"}, "INT8='yes' must be True or False"),
    ],
)
def test_bad_int8_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DeployConfig(**kwargs)
