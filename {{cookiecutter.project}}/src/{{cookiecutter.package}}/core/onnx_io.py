"""ONNX Runtime sessions: the one way every ONNX file here is run (featurizer, exported model, service).

Writing ONNX files needs torch and lives in ``modeling.onnx_export``; running them needs only this.
"""

from pathlib import Path

import numpy as np

from .cpu import available_cores

INPUT_NAME = "images"


DEVICES = ("cpu", "cuda", "auto")


def providers(device: str = "cpu") -> list[str]:
    """ONNX Runtime execution providers for ``device``: cpu, cuda (refused without CUDA), or auto (cuda if present)."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"Invalid device {device!r}. Use one of {', '.join(DEVICES)}.")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ValueError(
            "device 'cuda' asked for, but this ONNX Runtime has no CUDA provider: install onnxruntime-gpu, "
            "or use --device cpu."
        )
    if device == "cuda" or (device == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session(path: Path, device: str = "cpu", threads: int = 0, spin: bool = True):
    """An ONNX Runtime session on ``device``; on CPU it uses ``threads`` cores (0: every core this process may use).

    ``spin=False`` lets its threads sleep between calls instead of busy-waiting: for processes that also decode
    images or answer HTTP on the same cores (the scorer, the service)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=providers(device))


def run(sess, images: np.ndarray) -> np.ndarray:
    return sess.run(None, {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})[0]
