"""One image through an exported model, the plain way: what the service and the scorer must agree with."""

import numpy as np

from {{ cookiecutter.package }}.core.images import load_image
from {{ cookiecutter.package }}.deployment.predict import ExportedModel, predict


def predict_image(model: ExportedModel, path_or_file) -> dict[str, object]:
    """Label and per-class probabilities for one image (a path or a file-like object)."""
    image = load_image(path_or_file, model.resolution, model.resize)
    probs = predict(model, image.transpose(2, 0, 1)[None].astype(np.float32))
    label, probs = model.labels(probs)[0], probs[0]
    return {
        "label": label,
        "probabilities": {name: float(p) for name, p in zip(model.classes, probs)},
    }
