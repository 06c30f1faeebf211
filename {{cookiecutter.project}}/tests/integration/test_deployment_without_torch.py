"""Scoring and serving an exported model need the ``serve`` extra only (ONNX Runtime, numpy, Pillow, FastAPI):
never torch, nor anything else the notebooks need.

Fake packages that refuse to import sit first on PYTHONPATH of the real ``score`` command and the real
service, so any import of torch (or pandas, scikit-learn, ...) on those paths fails them.
"""

import csv
import os
import subprocess
import sys

import requests

from {{ cookiecutter.package }}.deployment.launcher import running_service

PACKAGE = "{{ cookiecutter.package }}"


# What `pip install .[pipeline]` adds to the `serve` extra: none of it may be imported to score or serve.
NOT_IN_THE_SERVE_EXTRA = ("torch", "torchvision", "pandas", "sklearn", "matplotlib", "imgaug", "cv2", "onnx")


def torch_refused(tmp_path) -> dict[str, str]:
    blocker = tmp_path / "blocker"
    for name in NOT_IN_THE_SERVE_EXTRA:
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('deployment imported {name}')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}


def test_the_blocker_really_blocks_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import torch"], env=torch_refused(tmp_path), capture_output=True, text=True
    )
    assert result.returncode != 0 and "deployment imported torch" in result.stderr


def test_importing_the_deployment_package_loads_neither_torch_nor_modeling():
    modules = ["deployment", "deployment.predict", "deployment.scoring.batch_score", "deployment.scoring.shards"]
    modules += ["deployment.service.app", "deployment.launcher", "deployment.export", "deployment.steps"]
    code = f"import sys, {', '.join(f'{PACKAGE}.{m}' for m in modules)}\n"
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or '.modeling' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


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
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in ("horizontal", "vertical")
