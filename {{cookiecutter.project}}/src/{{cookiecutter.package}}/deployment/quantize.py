"""The exported fp32 model statically quantized to int8 with ONNX Runtime, kept only when it keeps validation accuracy.

Recipe, each choice measured on the demo's models (426 validation images): ONNX Runtime's pre-processing (graph
optimisation and ONNX shape inference; symbolic shape inference is for transformers and fails on the bilinear
pooling), QDQ format, int8 weights per output channel (per-tensor weights lost up to 2 more points), uint8 activations
calibrated by their minimum and maximum on training images prepared exactly as scoring prepares them (entropy and
percentile calibration did no better, 10 to 16 times slower). Only the backbone's trunk, up to its last convolution,
is quantized (each member's trunk, in an ensemble): pooling, head and softmax stay float, because quantizing the
bilinear pooling's matrix square root changed 39% of the demo model's answers, and those layers are a small part of
the work.

Only export runs this module; it imports ONNX Runtime's quantization tools (and so ``onnx``) when it runs, so
scoring and serving never load them. int8 is optional: whatever fails while quantizing or checking it, the export
goes on with fp32 alone and the model card says why.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from ..core import onnx_io
from ..core.batching import batches
from ..core.images import load_batch
from .predict import INT8_MODEL_FILE, MODEL_FILE, load_model, predict

INT8_TOLERANCE = 0.005  # the int8 model is kept when its validation accuracy is at most 0.5 point below fp32's
CALIBRATION_SEED = 0  # which training images calibrate: the same ones on every export of the same run
CALIBRATION_BATCH = 8  # images decoded and run at a time while calibrating
EVALUATION_BATCH = 32


class ImageBatches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol (``get_next``): the images, decoded a batch at a time."""

    def __init__(self, paths: list[str], resolution: int, resize: str, batch_size: int = CALIBRATION_BATCH) -> None:
        self.paths, self.resolution, self.resize, self.batch_size = list(paths), resolution, resize, batch_size
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.paths):
            return None
        chunk = self.paths[self.start : self.start + self.batch_size]
        self.start += self.batch_size
        return {onnx_io.INPUT_NAME: load_batch(chunk, self.resolution, self.resize)}


def calibration_sample(paths: list[str], n: int, seed: int = CALIBRATION_SEED) -> list[str]:
    """``n`` of ``paths`` (all of them when there are fewer), chosen at random but the same for the same ``seed``."""
    paths = list(paths)
    if len(paths) <= n:
        return paths
    return [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False))]


def _after_trunk(model_path: Path) -> list[str]:
    """Names of the nodes no convolution follows: pooling, head and softmax, left in float. In one network they are
    the nodes after its last convolution; an ensemble (or mirrored views) has a trunk, and then a head, per member."""
    import onnx

    nodes = onnx.load(str(model_path)).graph.node
    if not any(node.op_type == "Conv" for node in nodes):
        return []
    before_conv: set[str] = set()  # tensors a convolution reads, directly or through other nodes
    after = []
    for node in reversed(nodes):  # ONNX lists nodes in topological order: each node's readers come after it
        if node.op_type == "Conv" or before_conv.intersection(node.output):
            before_conv.update(node.input)
        else:
            after.append(node.name)
    return after[::-1]


def quantize(model_dir: str | Path, calibration_paths: list[str], out: str | Path | None = None) -> Path:
    """``model_dir``'s model.onnx statically quantized to int8, calibrated on ``calibration_paths``; written to
    ``out`` (default ``model_dir/model.int8.onnx``) only once complete."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_dir = Path(model_dir)
    out = Path(out) if out else model_dir / INT8_MODEL_FILE
    if not calibration_paths:
        raise ValueError("No calibration images: int8 quantization needs training images to measure activations.")
    fp32 = load_model(model_dir)  # the checks of an exported folder, and its resolution and resize
    beside = model_dir.resolve().parent  # not in the model folder: a killed export leaves nothing there
    with tempfile.TemporaryDirectory(prefix=f".{model_dir.name}.int8-", dir=beside) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(model_dir / MODEL_FILE), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            ImageBatches(calibration_paths, fp32.resolution, fp32.resize),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_after_trunk(prepared),
            calibrate_method=CalibrationMethod.MinMax,  # reduces each tensor to its range as it runs: memory stays flat
        )
        quantized.replace(out)  # a half-written file never looks finished
    return out


def validation_accuracies(
    model_dir: str | Path, paths: list[str], labels: list[str], int8_file: str = INT8_MODEL_FILE
) -> tuple[float, float]:
    """Accuracy of the fp32 and the int8 model (``int8_file``: a name in ``model_dir``, or a path) on ``paths`` with
    true ``labels``, each deciding as scoring does (the exported decision threshold, else the highest probability),
    on the same decoded images."""
    if len(paths) != len(labels) or not paths:
        raise ValueError(f"Need as many labels as images, and at least one: got {len(paths)} and {len(labels)}.")
    fp32 = load_model(model_dir)
    int8_session = onnx_io.session(Path(model_dir) / int8_file)
    right = np.zeros(2)
    for chunk in batches(list(zip(paths, labels)), EVALUATION_BATCH):
        images = load_batch([path for path, _ in chunk], fp32.resolution, fp32.resize)
        truth = np.asarray([label for _, label in chunk], dtype=str)
        for i, probs in enumerate((predict(fp32, images), onnx_io.run(int8_session, images))):
            right[i] += (np.asarray(fp32.labels(probs), dtype=str) == truth).sum()
    fp32_accuracy, int8_accuracy = right / len(paths)
    return float(fp32_accuracy), float(int8_accuracy)


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters (the model card shows it)."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quantize_checked(
    model_dir: str | Path,
    calibration_paths: list[str],
    val_paths: list[str],
    val_labels: list[str],
    tolerance: float = INT8_TOLERANCE,
) -> dict[str, object]:
    """Quantize, then keep ``model.int8.onnx`` only if its validation accuracy is at least fp32's minus
    ``tolerance``; otherwise no int8 file is left. Returns what happened, for model.json and the model card."""
    model_dir = Path(model_dir)
    (model_dir / INT8_MODEL_FILE).unlink(missing_ok=True)  # an earlier export's int8 model is not this one's
    record = {
        "kept": False,
        "val_accuracy_fp32": None,
        "val_accuracy_int8": None,
        "calibration_images": len(calibration_paths),
    }
    if not calibration_paths or not val_paths:
        missing = "training" if not calibration_paths else "validation"
        return {**record, "reason": f"no {missing} images to calibrate and check an int8 model with"}
    candidate = model_dir.resolve().parent / f".{model_dir.name}.candidate.{INT8_MODEL_FILE}"  # beside, as above
    try:
        quantize(model_dir, calibration_paths, candidate)
        fp32, int8 = validation_accuracies(model_dir, val_paths, val_labels, str(candidate))
        kept = int8 >= fp32 - tolerance - 1e-9  # accuracies are fractions of whole images: no rounding slips
        if kept:
            candidate.replace(model_dir / INT8_MODEL_FILE)
    except Exception as error:  # ONNX Runtime's quantizer raises anything; the fp32 model is the export
        reason = f"int8 quantization failed ({one_line(error)}): not kept; score and serve use fp32"
        print(reason, file=sys.stderr)
        return {**record, "reason": reason}
    finally:
        candidate.unlink(missing_ok=True)
    verdict = "at most" if kept else "more than"
    outcome = "kept" if kept else "not kept; score and serve use fp32"
    reason = (
        f"int8 validation accuracy {int8:.4f} is {verdict} {tolerance * 100:g} point below fp32's {fp32:.4f} "
        f"({len(val_paths)} images): {outcome}"
    )
    return {**record, "kept": kept, "val_accuracy_fp32": fp32, "val_accuracy_int8": int8, "reason": reason}
