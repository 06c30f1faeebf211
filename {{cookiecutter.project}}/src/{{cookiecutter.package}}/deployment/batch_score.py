"""Batch scoring: a folder of images, or a CSV of paths, scored into a CSV with an exported model."""

import csv
from pathlib import Path

from ..core.images import IMAGE_EXTENSIONS, image_files, load_batch
from .predict import load_model, predict


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


def score(model_dir: str | Path, source: Path, output: Path, batch_size: int = 32) -> Path:
    """Write one CSV row per image: path, predicted label, probability of each class.

    ``model_dir`` is an exported model folder or a registered version (``models:/<name>@<alias>``)."""
    from .registry import fetch, is_registry_uri

    if is_registry_uri(model_dir):
        model_dir, registered = fetch(str(model_dir))
        print(f"scoring with {registered['uri']}: version {registered['version']} {registered['aliases']}")
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
            for path, label, row in zip(chunk, model.labels(probs), probs):
                writer.writerow([path, label, *[f"{p:.6f}" for p in row]])
    return output
