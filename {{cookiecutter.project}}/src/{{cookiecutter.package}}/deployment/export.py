"""The trained network as ONNX, with the metadata and model card that travel with it.

The one deployment module that handles a torch model: it is given one, and imports torch only to run it.
"""

import json
from pathlib import Path

import numpy as np

from ..core import onnx_io
from ..core.formatting import with_interval
from .predict import CARD_FILE, INT8_MODEL_FILE, METADATA_FILE, MODEL_FILE


def write_exported_model(model, out_dir: Path, metadata: dict) -> Path:
    """Write model.onnx + model.json (classes, resolution, metrics, ...) into ``out_dir``."""
    for key in ("classes", "resolution", "resize", "backbone", "classifier"):
        if key not in metadata:
            raise ValueError(
                f"Export metadata is missing {key!r}; it needs classes, resolution, resize, backbone and classifier."
            )
    from ..modeling.onnx_export import export_onnx  # torch: only when exporting, never when scoring or serving

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INT8_MODEL_FILE).unlink(missing_ok=True)  # an earlier export's int8 model is not this model's
    export_onnx(model, out_dir / MODEL_FILE, metadata["resolution"], "probabilities")
    return write_metadata(out_dir, metadata)


def write_metadata(out_dir: Path, metadata: dict) -> Path:
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return out_dir


def max_difference(model, out_dir: Path, images: np.ndarray) -> float:
    """Largest gap between the torch ``model``'s and ONNX Runtime's probabilities on ``images``."""
    import torch

    with torch.inference_mode():
        expected = model(torch.from_numpy(images)).numpy()
    actual = onnx_io.run(onnx_io.session(out_dir / MODEL_FILE), images)
    return float(np.abs(expected - actual).max())


def _with_interval(metrics: dict, key: str) -> str:
    shown = with_interval(metrics.get(key, float("nan")), metrics.get(f"{key}_ci"))
    return (
        f"{shown} (95% bootstrap interval, {metrics.get('n_test')} test images)" if metrics.get(f"{key}_ci") else shown
    )


def _decision_line(decision: dict | None) -> str:
    if not decision:
        return "- Decision: the class with the highest probability."
    return (
        f"- Decision: `{decision['class']}` whenever its probability is at least {decision['threshold']:.4f}, chosen "
        f"on validation for {decision['target']} (test recall {decision['test_recall']:.3f}, precision "
        f"{decision['test_precision']:.3f})."
    )


def _calibration(metrics: dict) -> str:
    calibration = metrics.get("calibration", {})
    if "test_ece_before" not in calibration:
        return "not measured"
    return f"{calibration['test_ece_before']:.3f} before, {calibration['test_ece_after']:.3f} after"


def _accuracy(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"


def _int8_lines(int8: dict | None) -> list[str]:
    """Both precisions' validation accuracy, and whether the int8 model was kept (``--precision int8``)."""
    if not int8:
        return ["## int8", "- No int8 model: export was asked not to make one (INT8=False).", ""]
    kept = f"`{INT8_MODEL_FILE}`, kept" if int8["kept"] else "not kept"
    return [
        "## int8",
        f"Statically quantized with ONNX Runtime (QDQ, int8 weights per channel, activations calibrated on "
        f"{int8['calibration_images']} training images); kept only within 0.5 point of fp32 on validation.",
        "",
        "| Precision | Validation accuracy | File |",
        "|---|---|---|",
        f"| fp32 | {_accuracy(int8['val_accuracy_fp32'])} | `{MODEL_FILE}` |",
        f"| int8 | {_accuracy(int8['val_accuracy_int8'])} | {kept} |",
        "",
        f"- {int8['reason']}.",
        "",
    ]


def _settings_line(settings: dict) -> str:
    """The model's settings; an ensemble's as its members (each member's own settings are in the metadata), not a
    page of nested JSON."""
    members = settings.get("members")
    if not members:
        return f"- Settings: `{json.dumps(settings, default=str)}`."
    each = ", ".join(
        f"`{m['name']}` (share {m['weight']:g}, temperature {m['temperature']:.3f}, validation accuracy "
        f"{m['config']['val_accuracy']:.4f} alone)"
        for m in members
    )
    return f"- Members: {each}; the share chosen on validation ({settings['val_accuracy']:.4f} together)."


def write_model_card(out_dir: Path, metadata: dict, metrics: dict) -> Path:
    """A short model card: what the model is, what it was trained on, how well it does."""
    classes = ", ".join(metadata["classes"])
    lines = [
        f"# Model card: {metadata.get('project', 'image classifier')}",
        "",
        "## Model",
        f"- Backbone: `{metadata['backbone']}` ({metadata.get('weights_note', 'weights as trained')}).",
        f"- Classifier: `{metadata['classifier']}` (`linear_probe`: logistic regression on the frozen backbone's "
        "pooled features, folded into a linear layer; `fine_tuned`: the network retrained end to end; `ensemble`: "
        "the two's calibrated probabilities averaged, weighted on validation), chosen over the other candidates on "
        "validation accuracy.",
        _settings_line(metadata.get("settings", {})),
        f"- Input: RGB, {metadata['resolution']}x{metadata['resolution']} pixels, float32 NCHW on the 0-255 scale, "
        f"made square by `{metadata['resize']}` (stretch, centre crop or pad; the batch scorer and the service "
        "do the same); output: class probabilities.",
        f"- Classes: {classes}.",
        "",
        "## Data",
        f"- Source: {metadata.get('data_source', 'unknown')}.",
        f"- Images: {metrics.get('n_train')} train, {metrics.get('n_val')} validation, {metrics.get('n_test')} test.",
        "",
        "## Evaluation (test split, used once)",
        f"- Accuracy: {_with_interval(metrics, 'test_accuracy')}",
        f"- AUC: {_with_interval(metrics, 'test_auc')}",
        f"- Validation accuracy (used to choose the model): {metrics.get('val_accuracy', float('nan')):.4f}",
        _decision_line(metadata.get("decision")),
        f"- Probabilities calibrated by a temperature of {metadata.get('temperature', 1.0):.3f} fitted on validation "
        f"(test expected calibration error {_calibration(metrics)}).",
        "",
        *_int8_lines(metadata.get("int8")),
        "## Limits",
        "- Trained on the images above only; check accuracy on data from your own setting before relying on it.",
        "",
    ]
    path = out_dir / CARD_FILE
    path.write_text("\n".join(lines))
    return path
