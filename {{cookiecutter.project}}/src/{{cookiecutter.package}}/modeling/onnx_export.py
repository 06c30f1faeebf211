"""Torch module -> ONNX file: the one export path (the featurizer, each candidate, the exported model)."""

import warnings
from pathlib import Path

import torch

from ..core.onnx_io import INPUT_NAME

# On CPU, ONNX Runtime runs a network several times faster than torch eager, but exporting costs 2-3 s first.
# Measured with EfficientNet-Lite0 on 2 cores: eager 154 ms, ONNX Runtime 27 ms an image at 224 px, export and
# session 1.8-3.2 s; eager time grows with the pixels. Below this many 224-px images' worth of pixels, eager wins.
EAGER_IMAGES_AT_224 = 20


def export_onnx(model, path: Path, resolution: int, output_name: str) -> Path:
    """Write ``model`` (a torch module: float images 0-255, NCHW) to ``path`` with a dynamic batch axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, resolution, resolution)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.inference_mode(), warnings.catch_warnings():
        # Known and harmless, for this export only: the slicing of images into views and patches cannot be folded
        # into constants at export time; ONNX Runtime runs it as it is (the exported model is checked against
        # torch on real images).
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        # A transformer's shape checks (timm's ViT) become constants of the traced graph: right for the one input
        # size exported, which is the only size the model is given.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model.eval(),
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)  # a half-written file never looks finished
    return path


def worth_exporting(n_images: int, resolution: int) -> bool:
    """Whether scoring ``n_images`` on CPU is faster exported to ONNX Runtime than in torch eager."""
    return n_images * (resolution / 224) ** 2 >= EAGER_IMAGES_AT_224
