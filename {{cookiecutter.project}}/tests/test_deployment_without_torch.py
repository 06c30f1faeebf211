"""Scoring and serving an exported model need ONNX Runtime, numpy and Pillow: never torch.

A fake ``torch`` package that refuses to import sits first on PYTHONPATH of the real
``score`` command and the real service, so any import of torch on those paths fails them.
"""

import csv
import os
import subprocess
import sys

import requests

from {{ cookiecutter.package }}.deployment.serve import running_service

PACKAGE = "{{ cookiecutter.package }}"


def torch_refused(tmp_path) -> dict[str, str]:
    blocker = tmp_path / "blocker"
    for name in ("torch", "torchvision"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('deployment imported {name}')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}


def test_the_blocker_really_blocks_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import torch"], env=torch_refused(tmp_path), capture_output=True, text=True
    )
    assert result.returncode != 0 and "deployment imported torch" in result.stderr


def test_batch_scoring_runs_without_torch(exported_model, tiny_images, tmp_path):
    out = tmp_path / "scores.csv"
    command = [sys.executable, "-m", PACKAGE, "score", "--model", str(exported_model), "--input", str(tiny_images)]
    result = subprocess.run(
        [*command, "--output", str(out)], env=torch_refused(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(csv.DictReader(out.open()))) == 24


def test_the_service_runs_without_torch(exported_model, tiny_images, tmp_path, monkeypatch):
    for name, value in torch_refused(tmp_path).items():
        monkeypatch.setenv(name, value)
    with running_service(exported_model) as url, next(tiny_images.rglob("*.png")).open("rb") as image:
        answer = requests.post(f"{url}/predict", files={"file": image}, timeout=30)
    assert answer.status_code == 200 and answer.json()["label"] in ("horizontal", "vertical")
