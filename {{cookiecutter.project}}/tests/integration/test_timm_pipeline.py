"""A timm backbone through every stage: the smoke pipeline on a ConvNeXt whose weights come from a file
(``BACKBONE_WEIGHTS``, as on a machine without network), its exported model served and batch-scored.
A transformer's stages (pooling, ONNX, Grad-CAM's token maps) are proven in tests/unit/test_timm_backbones.py."""

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
BACKBONE = "timm:convnext_atto"


def test_the_smoke_pipeline_runs_a_timm_convnext_from_a_weights_file_and_serves_it(tiny_images, tmp_path):
    weights = timm_weights("convnext_atto", tmp_path)
    out = tmp_path / "run"
    extra = ["-p", "BACKBONE", BACKBONE, "-p", "BACKBONE_WEIGHTS", str(weights), "-p", "FREEZE_BLOCKS", "1"]
    result = subprocess.run(pipeline_command(tiny_images, out, *extra), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"features {BACKBONE} 96 px crop multistage:" in result.stdout, "every pooling ran on timm's stages"
    assert len(list((out / "notebooks").rglob("*.ipynb"))) == 9
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == BACKBONE
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert f"timm convnext_atto.d2_in1k weights from the file {weights}, licence apache-2.0" in card
    scored = json.loads((out / "results" / "02_batch_score.json").read_text())
    assert scored["accuracy"] == metrics["test_accuracy"], "the exported model scores test exactly as evaluated"

    csv = tmp_path / "scores.csv"
    command = [sys.executable, "-m", PACKAGE, "score", "--model", str(out / "model"), "--input", str(tiny_images)]
    score = subprocess.run([*command, "--output", str(csv)], capture_output=True, text=True, timeout=300)
    assert score.returncode == 0, score.stderr[-3000:]
    rows = pd.read_csv(csv)
    assert len(rows) == 24 and set(rows.prediction) <= {"horizontal", "vertical"} and rows.error.isna().all()
    image = next(tiny_images.rglob("*.png"))
    with running_service(out / "model") as url:
        answer = requests.post(f"{url}/predict", files=[("files", (image.name, image.read_bytes()))], timeout=60)
    assert answer.status_code == 200 and answer.json()["model"]["backbone"] == BACKBONE
    expected = rows.set_index("path").loc[str(image)]
    assert answer.json()["predictions"][0]["label"] == expected.prediction
