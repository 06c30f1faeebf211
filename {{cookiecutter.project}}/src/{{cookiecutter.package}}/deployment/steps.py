"""The steps of stage 3, one function per notebook section that does work.

``01_export``: ``export_model``; ``02_batch_score``: ``batch_score``; ``03_web_service``: ``try_service``.
Only ``export_model`` touches the trained torch model, and imports modeling when it runs; scoring and
serving read the exported folder with ONNX Runtime alone.
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import PROJECT_NAME
from ..core.config import DeployConfig
from ..core.images import load_batch
from ..core.paths import resolve
from ..core.results import AcquisitionResults, ExportResults, ScoringResults, ServiceResults
from ..core.run_folder import RunFolder
from ..core.stage_records import record_step
from ..core.stages import mermaid
from ..core.tracking import Tracker, parameters
from .export import max_difference, write_exported_model, write_metadata, write_model_card
from .quantize import calibration_sample, quantize_checked
from .registry import register
from .report import write_exit_report
from .scoring.batch_score import score

ONNX_TOLERANCE = 1e-3  # largest probability gap allowed between ONNX Runtime and PyTorch


def export_model(cfg: DeployConfig, run: RunFolder) -> ExportResults:
    """The chosen model as ONNX with its metadata and model card, checked against PyTorch on test images."""
    from ..modeling.backbones import weights_note
    from ..modeling.calibration import Calibrated
    from ..modeling.model import load_classifier

    metrics = asdict(run.read_metrics())
    model, config = load_classifier(resolve(metrics["model_dir"]))
    temperature = metrics.get("calibration", {}).get("temperature", 1.0)
    model = Calibrated(model, temperature).eval()  # served probabilities are the calibrated ones
    essentials = ("backbone", "resolution", "resize", "classes", "classifier")
    metadata = {
        **{k: config[k] for k in essentials},
        "settings": {k: v for k, v in config.items() if k not in essentials},
        "project": PROJECT_NAME,
        "weights_note": config.get("weights_note") or weights_note(config["backbone"]),
        "temperature": temperature,
        "decision": metrics.get("decision"),  # a threshold on one class, applied by score and serve
        "data_source": run.load(AcquisitionResults).source,
        "metrics": {k: metrics[k] for k in ("test_accuracy", "test_auc", "val_accuracy")},
    }
    model_dir = write_exported_model(model, run.exported_model, metadata)
    test = run.read_manifest().query("split == 'test'")
    gap = max_difference(
        model, model_dir, load_batch(list(test.path[: cfg.check_images]), config["resolution"], config["resize"])
    )
    if gap >= ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree by {gap} on test images: the export is wrong.")
    print(f"largest probability gap ONNX Runtime vs PyTorch: {gap:.2e}")
    metadata["int8"] = _int8_model(cfg, run, model_dir)
    write_metadata(model_dir, metadata)
    write_model_card(model_dir, metadata, metrics)
    tracker = Tracker(run)
    tracker.params(parameters(cfg))
    _track_int8(tracker, metadata["int8"])
    for path, folder in ((run.figures, "figures"), (run.data_report.parent, "reports")):
        tracker.artifacts(path, folder)
    registered = register(tracker, model_dir)
    print(f"registered models:/{registered['name']} version {registered['version']} as {registered['alias']!r}")
    metadata["registered"] = {"name": registered["name"], "version": registered["version"]}  # served as a folder too
    write_metadata(model_dir, metadata)
    report = write_exit_report(run.exit_report, model_dir, metadata, metrics, registered, mermaid(run))
    tracker.artifacts(report, "reports")
    files = sorted(p.name for p in model_dir.iterdir())
    results = ExportResults(str(model_dir), gap, files, registered, metadata["int8"])
    run.save(results)
    record_step(run, results.STEP, cfg)
    return results


def _int8_model(cfg: DeployConfig, run: RunFolder, model_dir: Path) -> dict | None:
    """The int8 model, calibrated on training images, kept only if it holds validation accuracy (None: INT8=False)."""
    if not cfg.int8:
        print("int8: not made (INT8=False)")
        return None
    manifest = run.read_manifest()
    train, val = manifest.query("split == 'train'"), manifest.query("split == 'val'")
    calibration = calibration_sample(list(train.path), cfg.calibration_images)
    record = quantize_checked(model_dir, calibration, list(val.path), list(val.label.astype(str)))
    print(f"int8: {record['reason']}")
    return record


def _track_int8(tracker: Tracker, int8: dict | None) -> None:
    if int8 is None:
        tracker.tags({"int8_kept": False})
        return
    accuracies = {f"int8_check_{k}": int8[k] for k in ("val_accuracy_fp32", "val_accuracy_int8") if int8[k] is not None}
    tracker.metrics(accuracies)
    tracker.tags({"int8_kept": int8["kept"], "int8_reason": int8["reason"]})


def batch_score(run: RunFolder) -> ScoringResults:
    """The test split scored by the exported model with the batch scorer, as a user would score new images.

    Its accuracy must equal the evaluated model's: a gap means export or preprocessing changed the model."""
    test = run.read_manifest().query("split == 'test'")
    test[["path", "label"]].to_csv(run.test_images, index=False)
    scores = pd.read_csv(score(run.exported_model, run.test_images, run.scores), dtype={"error": str})
    failed = scores[scores.error.notna()]  # rows in input order: one per test image
    if len(failed):
        raise RuntimeError(
            f"{len(failed)} test image(s) could not be scored, e.g. {failed.path.iloc[0]}: {failed.error.iloc[0]}. "
            f"Every row's reason is in {run.scores}; acquisition had read these images, so check they are unchanged."
        )
    accuracy = float((scores.prediction.astype(str).to_numpy() == test.label.astype(str).to_numpy()).mean())
    metrics = asdict(run.read_metrics())
    expected = (metrics.get("decision") or metrics)["test_accuracy"]  # as the model decides: threshold or argmax
    print(f"accuracy from the exported model: {accuracy:.4f} (evaluation notebook: {expected:.4f})")
    if not np.isclose(accuracy, expected, atol=0.01):
        raise RuntimeError(f"The exported model scores {accuracy:.4f} on test, the evaluated one {expected:.4f}.")
    results = ScoringResults(len(scores), accuracy)
    run.save(results)
    record_step(run, results.STEP)
    return results


def try_service(cfg: DeployConfig, run: RunFolder) -> ServiceResults:
    """The REST service started on the exported model, asked for its health and one test image's label."""
    import requests

    from .launcher import running_service

    example = run.read_manifest().query("split == 'test'").iloc[0]
    with running_service(run.exported_model, port=cfg.port or None) as url:
        health = requests.get(f"{url}/health", timeout=10).json()
        with open(example.path, "rb") as image_file:
            answer = requests.post(f"{url}/predict", files={"files": image_file}, timeout=60).json()
    print("health:", health)
    print("answer:", answer)
    results = ServiceResults(health, answer, answer["predictions"][0], str(example.label), str(example.path))
    run.save(results)
    record_step(run, results.STEP, cfg)
    return results
