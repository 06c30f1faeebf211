"""Fine-tuning as a command: resumed after a kill, and on 2 CPU processes under torchrun (gloo), with the default
backbone and with a timm transformer."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from helpers.manifests import build_manifest
from helpers.models import timm_weights

from {{ cookiecutter.package }}.acquisition.manifest import MANIFEST_COLUMNS
from {{ cookiecutter.package }}.modeling.model import load_classifier, new_classifier, predict_paths

PACKAGE = "{{ cookiecutter.package }}"
TINY = ["-p", "FINE_TUNE_RESOLUTION", "32", "-p", "BATCH_SIZE", "4", "-p", "FREEZE_BLOCKS", "0"]


@pytest.fixture
def run_dir(tmp_path, tiny_images):
    manifest = build_manifest(tiny_images, 0.3, 0.2).reindex(columns=MANIFEST_COLUMNS, fill_value="")
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def last_state(run_dir):
    return torch.load(run_dir / "models" / "fine_tuned" / "last.pt", weights_only=False)


def test_an_interrupted_run_resumes_from_its_last_epoch(run_dir):
    command = [sys.executable, "-m", PACKAGE, "train", "--run-dir", str(run_dir), *TINY]
    command += ["-p", "EPOCHS", "6", "-p", "PATIENCE", "10"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run_dir / "models" / "fine_tuned" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = last_state(run_dir)["history"]["rows"]
    assert 1 <= len(done_before) < 6, "the kill came after the first checkpoint and before the end"

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {last}: {len(done_before)} epoch(s) done, continuing" in second.stdout
    rows = last_state(run_dir)["history"]["rows"]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[: len(done_before)] == done_before, "finished epochs are kept, not re-run"

    third = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "6 epoch(s) done, finished" in third.stdout and "epoch 1/6" not in third.stdout


def test_two_cpu_processes_train_with_gloo_and_write_one_checkpoint(run_dir):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", PACKAGE, "train", "--run-dir", str(run_dir), *TINY, "-p", "EPOCHS", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es) on cpu" in result.stdout
    assert result.stdout.count("epoch 1/2:") == 1, "only the main process logs"
    folder = run_dir / "models" / "fine_tuned"
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "model.json", "model.pt"]
    model, config = load_classifier(folder)
    assert config["classes"] == ["horizontal", "vertical"] and config["settings"]["epochs"] == 2
    torch.manual_seed(0)  # the seed fine_tune starts from: the same fresh head
    start = new_classifier("efficientnet_lite0", 2, 32)
    assert not torch.allclose(start.head.weight, model.head.weight), "the head was trained"
    history = last_state(run_dir)["history"]
    assert len(history["rows"]) == 2
    # validation was measured over both processes' shares: one process scoring every image must agree
    manifest = pd.read_csv(run_dir / "manifest.csv")
    val = manifest[manifest.split == "val"]

    def accuracy_of(views: str, resolution: int) -> float:
        model.tta = views
        probs = predict_paths(model, list(val.path), resolution, config["resize"])
        return (val.label == [config["classes"][i] for i in probs.argmax(1)]).mean()

    trained_at = config["training_resolution"]
    assert history["best_val_accuracy"] == config["val_accuracy_without_tta"] == accuracy_of("none", trained_at)
    # then, as 02_fine_tune does, the main process chose the views (those its flips allow) and resolution on validation
    assert config["tta"] in ("none", "horizontal") and config["resolution"] in (32, 48)
    assert config["val_accuracy"] == accuracy_of(config["tta"], config["resolution"]) >= accuracy_of("none", trained_at)


def test_a_timm_transformer_trains_under_torchrun(run_dir, tmp_path):
    """A ViT's tokens, class token and position embedding under DistributedDataParallel: every trainable
    parameter must get a gradient on both processes, or the second step hangs or fails."""
    weights = timm_weights("vit_tiny_patch16_224", tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", PACKAGE, "train", "--run-dir", str(run_dir), *TINY, "-p", "EPOCHS", "2"]
    command += ["-p", "BACKBONE", "timm:vit_tiny_patch16_224", "-p", "BACKBONE_WEIGHTS", str(weights)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es) on cpu" in result.stdout and result.stdout.count("epoch 2/2:") == 1
    model, config = load_classifier(run_dir / "models" / "fine_tuned")
    assert config["backbone"] == "timm:vit_tiny_patch16_224" and len(last_state(run_dir)["history"]["rows"]) == 2
