"""timm backbones through every stage: the smoke pipeline on a convolutional network (ConvNeXt) and on a
transformer (ViT, patch embedding and tokens), each with weights from a file (``BACKBONE_WEIGHTS``, as on a
machine without network), its exported model served and batch-scored. Each stage's parts are proven against
timm itself in tests/unit/test_timm_backbones.py."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import requests
from helpers.models import timm_weights
from helpers.pipeline import pipeline_command

from {{ cookiecutter.package }}.deployment.launcher import running_service

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
PACKAGE = "{{ cookiecutter.package }}"
MODELS = {"convnext_atto": "convnext_atto.d2_in1k", "vit_tiny_patch16_224": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}


@pytest.mark.parametrize("model", list(MODELS))
def test_the_smoke_pipeline_runs_a_timm_backbone_from_a_weights_file_and_serves_it(tiny_images, tmp_path, model):
    weights, backbone = timm_weights(model, tmp_path), f"timm:{model}"
    out = tmp_path / "run"
    extra = ["-p", "BACKBONE", backbone, "-p", "BACKBONE_WEIGHTS", str(weights), "-p", "FREEZE_BLOCKS", "1"]
    result = subprocess.run(pipeline_command(tiny_images, out, *extra), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"features {backbone} 96 px crop multistage:" in result.stdout, "every pooling ran on timm's stages"
    assert len(list((out / "notebooks").rglob("*.ipynb"))) == 9
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == backbone
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert f"timm {MODELS[model]} weights from the file {weights}, licence apache-2.0" in card
    scored = json.loads((out / "results" / "02_batch_score.json").read_text())
    assert scored["accuracy"] == metrics["test_accuracy"], "the exported model scores test exactly as evaluated"
    int8 = json.loads((out / "results" / "01_export.json").read_text())["int8"]  # quantized, judged on validation
    assert 0 <= int8["val_accuracy_int8"] <= 1 and int8["kept"] == (out / "model" / "model.int8.onnx").is_file()

    csv = tmp_path / "scores.csv"
    command = [sys.executable, "-m", PACKAGE, "score", "--model", str(out / "model"), "--input", str(tiny_images)]
    score = subprocess.run([*command, "--output", str(csv)], capture_output=True, text=True, timeout=300)
    assert score.returncode == 0, score.stderr[-3000:]
    rows = pd.read_csv(csv)
    assert len(rows) == 24 and set(rows.prediction) <= {"horizontal", "vertical"} and rows.error.isna().all()
    image = next(tiny_images.rglob("*.png"))
    with running_service(out / "model") as url:
        answer = requests.post(f"{url}/predict", files=[("files", (image.name, image.read_bytes()))], timeout=60)
    assert answer.status_code == 200 and answer.json()["model"]["backbone"] == backbone
    expected = rows.set_index("path").loc[str(image)]
    assert answer.json()["predictions"][0]["label"] == expected.prediction
