import json
import os
import subprocess
import sys

import pandas as pd
import pytest

PACKAGE = "{{ cookiecutter.package }}"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", PACKAGE, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def own_cache(folder) -> list[str]:
    """The parameter that keeps a run's features in ``folder``, not in the project's feature cache."""
    return ["-p", "FEATURE_CACHE", str(folder / "features")]


def test_unknown_parameter_lists_the_valid_ones(tiny_images, tmp_path):
    result = run_cli("pipeline", "--data-dir", str(tiny_images), "--out", str(tmp_path), "-p", "LERNING_RATE", "1")
    assert result.returncode == 2
    assert "Unknown parameter(s) LERNING_RATE" in result.stderr and "C_GRID" in result.stderr
    assert not (tmp_path / "notebooks").exists()


def test_a_parameter_of_the_wrong_type_stops_the_pipeline_before_any_notebook(tiny_images, tmp_path):
    result = run_cli("pipeline", "--data-dir", str(tiny_images), "--out", str(tmp_path), "-p", "EPOCHS", "abc")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: EPOCHS='abc' must be a whole number."
    assert not (tmp_path / "notebooks").exists()


def test_unknown_profile_is_refused():
    result = run_cli("pipeline", "--profile", "huge")
    assert result.returncode == 2 and "invalid choice: 'huge'" in result.stderr


def test_score_writes_csv(exported_model, tiny_images, tmp_path):
    result = run_cli(
        "score", "--model", str(exported_model), "--input", str(tiny_images), "--output", str(tmp_path / "s.csv")
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 25


def test_score_with_a_missing_model_says_what_to_pass(tmp_path, tiny_images):
    result = run_cli(
        "score", "--model", str(tmp_path), "--input", str(tiny_images), "--output", str(tmp_path / "s.csv")
    )
    assert result.returncode == 1 and "not an exported model folder" in result.stderr


@pytest.mark.slow
def test_one_command_per_stage_runs_what_the_notebooks_run_and_a_recall_target_travels_to_score(tiny_images, tmp_path):
    """acquire, probe, train, evaluate (a threshold for a target recall, chosen on validation), export on one run
    folder, then score with the exported model: the threshold decides its predictions."""
    run = tmp_path / "run"
    small = ["-p", "BATCH_SIZE", "8"]
    for stage, *parameters in (
        ["acquire", "-p", "DATA_DIR", str(tiny_images), "-p", "VAL_FRACTION", "0.3", "-p", "WORKERS", "1"],
        ["probe", "-p", "RESOLUTION", "64", *small, *own_cache(tmp_path)],
        ["train", "-p", "FINE_TUNE_RESOLUTION", "32", "-p", "EPOCHS", "1", *small],
        ["evaluate", "-p", "TARGET_CLASS", "vertical", "-p", "TARGET_RECALL", "1.0"],
        ["export", "-p", "CHECK_IMAGES", "2"],
    ):
        result = run_cli(stage, "--run-dir", str(run), *parameters)
        assert result.returncode == 0, f"{stage}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["candidates"]) == {"linear_probe", "fine_tuned", "ensemble"}
    assert metrics["resolution"] in (64, 32, 48), "the probe's, or the fine-tuned network's chosen on validation"
    fine_tuned = json.loads((run / "results" / "02_fine_tune.json").read_text())
    assert (fine_tuned["flips"], fine_tuned["augment_strength"]) == ("horizontal", 1.0), "auto, for own images"
    decision = metrics["decision"]
    assert decision["class"] == "vertical" and decision["val_recall"] == 1.0
    assert json.loads((run / "model" / "model.json").read_text())["decision"] == decision
    output = run / "s.csv"
    result = run_cli("score", "--model", str(run / "model"), "--input", str(tiny_images), "--output", str(output))
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(output)
    assert len(scores) == 24
    flagged = scores.p_vertical >= decision["threshold"] - 5e-7  # the CSV rounds to 6 decimals
    assert ((scores.prediction == "vertical") == flagged).all()


def test_a_stage_without_its_inputs_names_the_step_to_run_first(tmp_path):
    result = run_cli("probe", "--run-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("run 01_acquire_data first with the same RUN_DIR.")


def test_an_unreachable_tracking_server_stops_the_pipeline_before_any_notebook(tiny_images, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # nothing listens there
    result = run_cli("pipeline", "--data-dir", str(tiny_images), "--out", str(tmp_path), env=env)
    assert result.returncode == 1
    assert "The MLflow tracking server http://127.0.0.1:9 (MLFLOW_TRACKING_URI) does not answer" in result.stderr
    assert not (tmp_path / "notebooks").exists()


@pytest.fixture(scope="module")
def acquired(tiny_images, tmp_path_factory):
    run = tmp_path_factory.mktemp("sweep-run")
    result = run_cli("acquire", "--run-dir", str(run), "-p", "DATA_DIR", str(tiny_images), "-p", "VAL_FRACTION", "0.3")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_two_by_two_sweep_compares_four_trials_and_chooses_on_validation(acquired):
    from mlflow import MlflowClient

    grid = ["-g", "RESOLUTION", "64,96", "-g", "POOLING", "average,bilinear"]
    options = ["-p", "BATCH_SIZE", "8", *own_cache(acquired), "--parallel", "2"]
    result = run_cli("sweep", "--run-dir", str(acquired), *grid, *options)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = acquired / "sweeps" / "sweep"
    table = pd.read_csv(folder / "trials.csv")
    assert len(table) == 4 and set(zip(table.RESOLUTION, table.POOLING)) == {
        (r, p) for r in (64, 96) for p in ("average", "bilinear")
    }
    assert (folder / "parameters.png").stat().st_size > 1000
    summary = json.loads((folder / "sweep.json").read_text())
    assert summary["best_trial"] == int(table.val_accuracy.idxmax()), "chosen on validation"
    metrics = json.loads((acquired / "metrics.json").read_text())
    assert metrics["candidates"]["linear_probe_sweep"] == table.val_accuracy.max()
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    parent = json.loads((acquired / "tracking.json").read_text())["run_id"]
    experiment = client.get_run(parent).info.experiment_id
    trials = client.search_runs([experiment], f"tags.sweep = 'sweep' and tags.mlflow.parentRunId = '{parent}'")
    assert sorted(t.info.run_name for t in trials) == [f"sweep-trial-{i}" for i in range(4)]
    shown = show_in_the_comparison_notebook(acquired)
    assert f"sweep 'sweep': best trial {summary['best_trial']}" in shown and "image/png" in shown


def show_in_the_comparison_notebook(run) -> str:
    """04_compare_runs executed on ``run`` with papermill; its outputs as text."""
    import papermill

    from {{ cookiecutter.package }}.orchestration.pipeline import notebook_paths

    notebook = next(p for p in notebook_paths() if p.name == "04_compare_runs.ipynb")
    executed = run / "04_compare_runs.ipynb"
    papermill.execute_notebook(
        str(notebook), str(executed), parameters={"RUN_DIR": str(run)}, cwd=str(notebook.parent), progress_bar=False
    )
    return executed.read_text()


@pytest.mark.slow
def test_an_optuna_search_keeps_its_study_in_a_database(acquired):
    import optuna

    grid = ["-g", "RESOLUTION", "64,80,96", "-g", "POOLING", "average"]
    search = ["--search", "tpe", "--trials", "3", "--name", "tpe"]
    result = run_cli("sweep", "--run-dir", str(acquired), *grid, *own_cache(acquired), *search)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(pd.read_csv(acquired / "sweeps" / "tpe" / "trials.csv")) == 3
    study = optuna.load_study(study_name="tpe", storage=f"sqlite:///{acquired / 'sweeps' / 'optuna.db'}")
    assert len(study.trials) == 3 and study.best_value == max(t.value for t in study.trials)


def test_a_sweep_over_parameters_of_two_stages_is_refused(acquired):
    result = run_cli("sweep", "--run-dir", str(acquired), "-g", "RESOLUTION", "64", "-g", "EPOCHS", "1,2")
    assert result.returncode == 2 and "fit no stage" in result.stderr
