"""The notebooks, end to end on tiny images: papermill through the CLI, then nbval."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from helpers.notebooks import noise

from {{ cookiecutter.package }}.core.run_folder import FIGURES, RunFolder
from {{ cookiecutter.package }}.deployment.launcher import running_service
from {{ cookiecutter.package }}.orchestration.pipeline import NOTEBOOKS

pytestmark = pytest.mark.notebooks
PACKAGE = "{{ cookiecutter.package }}"


def test_pipeline_writes_what_the_contract_names(smoke_run):
    out, stdout = smoke_run
    assert stdout.strip().splitlines()[-1] == str(out)
    assert "test_accuracy=" in stdout.strip().splitlines()[-2]
    progress = stdout.splitlines()
    assert any(line.startswith("      epoch 1/2: train loss") for line in progress), "epochs stream as they run"
    assert any("features {{ cookiecutter.backbone }} 96 px crop bilinear:" in line for line in progress)
    assert any("kept: validation accuracy" in line for line in progress)
    assert not any("it/s]" in line for line in progress), "progress bars stay in the notebooks"
    for name in NOTEBOOKS:
        executed = out / "notebooks" / name.split("/")[0] / name.split("/")[1]
        assert executed.is_file(), executed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "val_accuracy",
        "test_auc",
        "n_train",
        "n_val",
        "n_test",
        "classes",
        "backbone",
        "classifier",
    ):
        assert key in metrics, key
    assert metrics["classes"] == ["horizontal", "vertical"]
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 24
    scored = json.loads((out / "results" / "02_batch_score.json").read_text())
    assert scored["accuracy"] == metrics["test_accuracy"], "the exported model scores test exactly as evaluated"
    assert {p.name for p in (out / "model").iterdir()} >= {"model.onnx", "model.json", "MODEL_CARD.md"}
    assert set(metrics["candidates"]) == {"linear_probe", "fine_tuned", "ensemble"}
    assert metrics["val_accuracy"] == max(metrics["candidates"].values())
    on_test = metrics["candidates_on_test"]
    assert set(on_test) == {"linear_probe", "fine_tuned", "ensemble"}
    assert any(line.startswith("      ensemble: validation accuracy linear_probe ") for line in progress)
    assert on_test[Path(metrics["model_dir"]).name]["test_accuracy"] == metrics["test_accuracy"]


def test_each_notebook_recorded_its_results(smoke_run):
    out, _ = smoke_run
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    assert len(results) == len(NOTEBOOKS)
    assert results["01_linear_probe"]["fold_gap"] < 1e-4
    curve = results["01_linear_probe"]["curve"]
    assert results["01_linear_probe"]["val_accuracy"] == max(row["val_accuracy"] for row in curve)
    assert all(set(row) == {"C", "train_accuracy", "val_accuracy", "val_log_loss"} for row in curve), "no test score"
    assert results["01_export"]["onnx_gap"] < 1e-3
    assert results["02_batch_score"]["n_scored"] == json.loads((out / "metrics.json").read_text())["n_test"]
    assert results["03_web_service"]["prediction"]["label"] in ("horizontal", "vertical")
    assert results["02_fine_tune"]["best_epoch"] in (0, 1, 2), "0: no epoch beat the probe's head it started from"
    split_counts = results["01_acquire_data"]["split_counts"]
    assert results["02_explore_and_review"]["n_reviewed_by_probe"] == sum(split_counts.values()), "every split"
    assert set(split_counts) == {"train", "val", "test"}
    assert (out / "docs" / "data_report.md").is_file() and (out / "label_errors.csv").is_file()
    run = RunFolder(out)
    for figure in [name for names in FIGURES.values() for name in names]:
        assert run.figure(figure).stat().st_size > 1000, figure


def test_the_probe_chose_its_pooling_on_validation_and_metrics_record_it(smoke_run):
    out, _ = smoke_run
    probe = json.loads((out / "results" / "01_linear_probe.json").read_text())
    candidates = probe["pooling_candidates"]
    assert set(candidates) == {"average", "bilinear", "multistage"}
    assert candidates[probe["pooling"]]["val_accuracy"] == max(c["val_accuracy"] for c in candidates.values())
    assert probe["val_accuracy"] == candidates[probe["pooling"]]["val_accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe_pooling"] == {"chosen": probe["pooling"], "candidates": candidates}


def test_the_resize_mode_travels_from_the_parameters_to_every_model_and_the_service(smoke_run):
    out, _ = smoke_run
    assert json.loads((out / "metrics.json").read_text())["resize"] == "crop"
    for saved in ("models/linear_probe", "models/fine_tuned", "model"):
        assert json.loads((out / saved / "model.json").read_text())["resize"] == "crop", saved
    assert json.loads((out / "results" / "03_web_service.json").read_text())["health"]["resize"] == "crop"


def test_your_own_images_get_photo_augmentation_whatever_the_project_was_baked_for(smoke_run):
    out, _ = smoke_run
    settings = json.loads((out / "models" / "fine_tuned" / "model.json").read_text())["settings"]
    assert (settings["flips"], settings["augment_strength"]) == ("horizontal", 1.0)
    assert json.loads((out / "results" / "01_acquire_data.json").read_text())["sample"] == ""


def test_the_easy_tiny_task_is_learned(smoke_run):
    out, _ = smoke_run
    assert json.loads((out / "metrics.json").read_text())["val_accuracy"] >= 0.75


def test_the_run_is_tracked_on_the_mlflow_server(smoke_run, mlflow_server):
    from mlflow import MlflowClient

    out, _ = smoke_run
    client = MlflowClient(mlflow_server, mlflow_server)
    experiment = client.get_experiment_by_name("{{ cookiecutter.project_name }}").experiment_id
    (parent,) = client.search_runs([experiment], f"tags.run_dir = '{out}'")  # the pipeline's one MLflow run
    assert parent.info.status == "FINISHED" and parent.info.run_name == out.name
    params, metrics = parent.data.params, json.loads((out / "metrics.json").read_text())
    assert (params["RESIZE"], params["VAL_FRACTION"], params["MAX_PER_CLASS"]) == ("crop", "0.3", "12")
    assert {"REVIEW_FOLDS", "TARGET_RECALL", "CHECK_IMAGES"} <= set(params), "every notebook's parameters"
    assert params["data_source"].startswith("folder ") and params["data_source"].endswith("tiny_images0")
    assert params["manifest_sha256"] == hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest()
    assert parent.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert parent.data.metrics["test_accuracy_ci_low"] == metrics["test_accuracy_ci"][0]
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_name = {child.info.run_name: child for child in children}
    assert set(by_name) == {"linear_probe", "fine_tuned", "ensemble"}
    epochs = client.get_metric_history(by_name["fine_tuned"].info.run_id, "val_accuracy")
    assert [m.step for m in epochs] == [1, 2], "one point per epoch, step = epoch (here 2 epochs)"
    assert by_name["fine_tuned"].data.params["FLIPS"] == "horizontal", "'auto' is logged as what it became"
    curve = client.get_metric_history(by_name["linear_probe"].info.run_id, "curve_val_accuracy")
    assert len(curve) == 8, "one point per C tried"
    for name, child in by_name.items():
        assert child.data.metrics["test_accuracy"] == metrics["candidates_on_test"][name]["test_accuracy"]
    logged = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {"notebooks", "figures", "data", "reports", "model", "results", "metrics.json"} <= logged
    registered = json.loads((out / "results" / "01_export.json").read_text())["registered"]
    version = client.get_model_version_by_alias(registered["name"], "candidate")
    assert version.version == str(registered["version"]) and version.run_id == parent.info.run_id


def test_the_registered_candidate_is_served_from_the_registry(smoke_run, mlflow_server, tiny_images, monkeypatch):
    out, _ = smoke_run
    registered = json.loads((out / "results" / "01_export.json").read_text())["registered"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with running_service(f"models:/{registered['name']}@candidate") as url:
        health = requests.get(f"{url}/health", timeout=10).json()
        with next(tiny_images.rglob("*.png")).open("rb") as image:
            answer = requests.post(f"{url}/predict", files={"files": image}, timeout=30)
    assert health["model"]["version"] == registered["version"] and "candidate" in health["model"]["aliases"]
    body = answer.json()  # every answer says which registered version gave it
    assert answer.status_code == 200 and body["predictions"][0]["label"] in ("horizontal", "vertical")
    assert (body["model"]["name"], body["model"]["version"]) == (registered["name"], registered["version"])


def test_promote_refuses_a_version_whose_classes_differ_unless_forced(smoke_run, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    out, _ = smoke_run
    registered = json.loads((out / "results" / "01_export.json").read_text())["registered"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}

    def promote(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", PACKAGE, "promote", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    first = promote("--version", str(registered["version"]))
    assert first.returncode == 0 and first.stdout.strip().endswith(f"version {registered['version']}"), first.stderr
    other = tmp_path / "model"
    shutil.copytree(out / "model", other)
    metadata = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**metadata, "classes": ["cat", "dog"]}))
    client = MlflowClient(mlflow_server, mlflow_server)
    experiment = client.get_experiment_by_name("{{ cookiecutter.project_name }}").experiment_id
    run = client.create_run(experiment, run_name="other classes")
    client.log_artifacts(run.info.run_id, str(other), "model")
    version = client.create_model_version(registered["name"], f"{run.info.artifact_uri}/model", run.info.run_id)
    refused = promote("--version", version.version)
    assert refused.returncode == 1
    assert f"differs from the champion (version {registered['version']}) in classes" in refused.stderr
    assert client.get_model_version_by_alias(registered["name"], "champion").version == str(registered["version"])
    forced = promote("--version", version.version, "--force")
    assert forced.returncode == 0, forced.stderr
    assert client.get_model_version_by_alias(registered["name"], "champion").version == version.version


def test_the_exported_model_serves_the_calibrated_probabilities(smoke_run):
    out, _ = smoke_run
    calibration = json.loads((out / "metrics.json").read_text())["calibration"]
    assert calibration["val_log_loss_after"] <= calibration["val_log_loss_before"]
    assert json.loads((out / "model" / "model.json").read_text())["temperature"] == calibration["temperature"]
    evaluated = pd.read_csv(out / "test_predictions.csv").set_index("path")
    scored = pd.read_csv(out / "scores.csv").set_index("path").loc[evaluated.index]
    columns = [c for c in evaluated.columns if c.startswith("p_")]
    assert len(columns) == 2
    assert (scored[columns] - evaluated[columns]).abs().to_numpy().max() < 1e-4


def test_the_model_and_exit_reports_hold_the_runs_numbers(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "docs" / "model_report.md").read_text(encoding="utf-8")
    low, high = metrics["test_accuracy_ci"]
    assert f"- Accuracy: {metrics['test_accuracy']:.4f} [{low:.4f}, {high:.4f}]" in report
    assert low <= metrics["test_accuracy"] <= high
    assert f"Temperature {metrics['calibration']['temperature']:.3f}" in report
    for name in metrics["candidates_on_test"]:
        assert f"| {name} |" in report
    assert "(this run)" in report, "earlier runs come from the tracking store, this one among them"
    gap = metrics["gap"]  # validation against test: flagged exactly when the intervals part or calibration disagrees
    low_val, high_val = metrics["val_accuracy_ci"]
    apart = low_val > high or low > high_val
    assert gap["flagged"] == (apart or gap["calibration_disagrees"])
    assert ("**Validation and test disagree**" in report) == apart
    assert ("their 95% intervals overlap" in report) == (not gap["flagged"])
    assert "| measure | validation | test |" in report, "calibration's effect on both splits, side by side"
    exit_report = (out / "docs" / "exit_report.md").read_text(encoding="utf-8")
    export = json.loads((out / "results" / "01_export.json").read_text())
    registered, int8 = export["registered"], export["int8"]
    assert f"version {registered['version']}, alias `candidate`" in exit_report
    assert f"serve --model models:/{registered['name']}@candidate" in exit_report
    assert f"validation accuracy {int8['val_accuracy_int8']:.4f} vs fp32 {int8['val_accuracy_fp32']:.4f}" in exit_report
    assert ("`model.int8.onnx` kept" in exit_report) == int8["kept"] == (out / "model" / "model.int8.onnx").is_file()
    assert ("**Validation and test disagree**" in exit_report) == apart
    service = json.loads((out / "results" / "03_web_service.json").read_text())["answer"]["model"]
    assert (service["name"], service["version"]) == (registered["name"], registered["version"]), "from model.json"


def test_executed_notebooks_carry_no_warning_and_no_stderr_block(smoke_run):
    out, _ = smoke_run
    assert [block for notebook in sorted(out.rglob("*.ipynb")) for block in noise(notebook)] == []


def test_no_cell_ends_by_echoing_a_results_object(smoke_run):
    """A cell shows a table, a figure, a widget or a sentence, never a dataclass's repr (a wall of paths)."""
    out, _ = smoke_run
    echoes = [
        (notebook.name, i)
        for notebook in sorted(out.rglob("*.ipynb"))
        for i, cell in enumerate(json.loads(notebook.read_text())["cells"])
        for output in cell.get("outputs", [])
        if output["output_type"] == "execute_result"
        and re.match(r"\w+Results\(", "".join(output["data"].get("text/plain", "")))
    ]
    assert echoes == []


# Last: nbval executes the notebooks again in the same run folder, so it rewrites the results read above. All but
# fine-tuning, whose second run in the same folder is the resume the training-run tests prove (and the longest).
def test_executed_notebooks_pass_nbval(smoke_run):
    out, _ = smoke_run
    notebooks = sorted(p for p in (out / "notebooks").rglob("*.ipynb") if p.name != "02_fine_tune.ipynb")
    assert len(notebooks) == 8, notebooks
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", *map(str, notebooks)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=out)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " 0 passed" not in result.stdout and " passed" in result.stdout, result.stdout[-2000:]
