"""An exported model loaded for ONNX Runtime, and its predictions: the batch scorer and the service call these."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import onnx_io
from ..core.decision import decide

# An exported model folder; ``export`` writes it, everything here reads it.
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"  # statically quantized; written by export only when it keeps validation accuracy
PRECISIONS = {"fp32": MODEL_FILE, "int8": INT8_MODEL_FILE}
METADATA_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"


@dataclass
class ExportedModel:
    session: object
    classes: list[str]
    resolution: int
    resize: str  # how an image becomes square, as the model was trained (core.images.to_square)
    metadata: dict
    precision: str = "fp32"
    decision: dict | None = None  # a threshold on one class chosen on validation, else the highest probability

    def labels(self, probs: np.ndarray) -> list[str]:
        return [self.classes[i] for i in decide(probs, self.classes, self.decision)]


def load_model(model_dir: str | Path, precision: str = "fp32", device: str = "cpu") -> ExportedModel:
    """The exported model in ``model_dir`` at ``precision`` (fp32 or int8), run on ``device`` (cpu, cuda, auto)."""
    model_dir = Path(model_dir)
    if precision not in PRECISIONS:
        raise ValueError(f"Invalid precision {precision!r}. Use fp32 or int8.")
    missing = [name for name in (MODEL_FILE, METADATA_FILE) if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{str(model_dir)!r} is not an exported model folder (missing {', '.join(missing)}); "
            "run the pipeline and pass its <out>/model folder."
        )
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    if "resize" not in metadata and metadata.get("backbone", "").startswith("efficientnet_lite"):
        raise ValueError(
            f"The model in {str(model_dir)!r} was exported from an EfficientNet-Lite that ran the wrong activation "
            "(before the fix that added RESIZE): its predictions would be wrong. Re-run the pipeline and export again."
        )
    resize = metadata.get("resize", "stretch")  # models exported before RESIZE existed were stretched
    if not (model_dir / PRECISIONS[precision]).is_file():
        raise FileNotFoundError(
            f"{str(model_dir)!r} has no {PRECISIONS[precision]}: export writes the int8 model only when it keeps "
            "validation accuracy within 0.5 point of fp32 (see its MODEL_CARD.md). Use --precision fp32."
        )
    session = onnx_io.session(model_dir / PRECISIONS[precision], device, spin=False)  # decoders share the cores
    decision = metadata.get("decision")  # a threshold chosen on validation, if the evaluation was asked for one
    return ExportedModel(session, metadata["classes"], metadata["resolution"], resize, metadata, precision, decision)


def predict(model: ExportedModel, batch: np.ndarray) -> np.ndarray:
    """Probabilities (N, n_classes) for a float32 NCHW batch on the 0-255 scale."""
    return onnx_io.run(model.session, batch)
