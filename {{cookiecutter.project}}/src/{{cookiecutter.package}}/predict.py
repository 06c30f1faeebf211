"""Scoring with an exported model: the notebooks, the batch scorer and the service call ``predict``."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import onnx_io
from .data import IMAGE_EXTENSIONS, image_files, load_batch, load_image

# An exported model folder; ``export`` writes it, everything here reads it.
MODEL_FILE = "model.onnx"
METADATA_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"


@dataclass
class ExportedModel:
    session: object
    classes: list[str]
    resolution: int
    resize: str  # how an image becomes square, as the model was trained (data.to_square)
    metadata: dict


def load_model(model_dir: str | Path) -> ExportedModel:
    model_dir = Path(model_dir)
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
    session = onnx_io.session(model_dir / MODEL_FILE)
    return ExportedModel(session, metadata["classes"], metadata["resolution"], resize, metadata)


def predict(model: ExportedModel, batch: np.ndarray) -> np.ndarray:
    """Probabilities (N, n_classes) for a float32 NCHW batch on the 0-255 scale."""
    return onnx_io.run(model.session, batch)


def predict_image(model: ExportedModel, path_or_file) -> dict[str, object]:
    """Label and per-class probabilities for one image (a path or a file-like object)."""
    image = load_image(path_or_file, model.resolution, model.resize)
    probs = predict(model, image.transpose(2, 0, 1)[None].astype(np.float32))[0]
    return {
        "label": model.classes[int(probs.argmax())],
        "probabilities": {name: float(p) for name, p in zip(model.classes, probs)},
    }


def input_paths(source: Path) -> list[str]:
    """Images to score: every image under a folder, or the ``path`` column of a CSV."""
    if source.is_dir():
        return [str(p) for p in image_files(source)]
    if source.suffix.lower() == ".csv" and source.is_file():
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "path" not in rows[0]:
            raise ValueError(f"CSV {str(source)!r} needs a 'path' column (paths relative to the CSV are fine).")
        return [str((source.parent / row["path"]).resolve()) for row in rows]
    raise ValueError(
        f"Input {str(source)!r} is neither a folder of images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
        "nor a CSV file with a 'path' column."
    )


def score(model_dir: Path, source: Path, output: Path, batch_size: int = 32) -> Path:
    """Write one CSV row per image: path, predicted label, probability of each class."""
    model = load_model(model_dir)
    paths = input_paths(source)
    if not paths:
        raise ValueError(f"No images found in {str(source)!r}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "prediction", *[f"p_{name}" for name in model.classes]])
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            probs = predict(model, load_batch(chunk, model.resolution, model.resize))
            for path, row in zip(chunk, probs):
                writer.writerow([path, model.classes[int(row.argmax())], *[f"{p:.6f}" for p in row]])
    return output
