"""What the benchmarks share: the baked project, the machine they ran on, test images, timed child processes.

Every benchmark bakes the default project into a temporary folder and imports its package from there, so it
measures the template as a user gets it; the figures it prints name the machine they were measured on.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

TEMPLATE = Path(__file__).resolve().parents[1]
PACKAGE = "solar_cell_inspection"


def bake(dest: Path) -> Path:
    """The default project baked under ``dest``; its package is importable here and in child processes."""
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(dest), str(TEMPLATE)],
        check=True,
        capture_output=True,
    )
    project = dest / "solar-cell-inspection"
    src = str(project / "src")
    sys.path.insert(0, src)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return project


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(load_at_start: tuple[float, float, float]) -> dict[str, object]:
    """The hardware and software the figures come from. The load average (1, 5, 15 min) at the start and the end
    says whether other work shared the cores: figures taken under load are lower than the machine's own."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "cores": cores(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "onnxruntime": installed("onnxruntime") or installed("onnxruntime-gpu"),
        "torch": installed("torch"),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def timed(function: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def print_report(report: dict) -> None:
    """The one JSON object a benchmark prints on stdout (progress and logs go to stderr)."""
    print(json.dumps(report, indent=2))


def _write_jpeg_chunk(args: tuple[Path, int, int, int]) -> None:
    """Smooth random colour images, like photos to a JPEG encoder; seeded by position, so runs write the same."""
    folder, start, count, size = args
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((size, size), Image.BICUBIC).save(folder / f"{i:06d}.jpg", quality=90)


def write_jpegs(folder: Path, first: int, count: int, size: int, workers: int) -> list[Path]:
    """``count`` JPEGs of ``size`` x ``size`` pixels named from ``first`` on, written by ``workers`` processes."""
    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, count // (workers * 4))
    jobs = [(folder, first + s, min(step, count - s), size) for s in range(0, count, step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_jpeg_chunk, jobs))
    return [folder / f"{i:06d}.jpg" for i in range(first, first + count)]


def build_default_model(
    out_dir: Path,
    resolution: int | None = None,
    classes: tuple[str, ...] = ("a", "b"),
    head_from: list[tuple[Path, str]] | None = None,
) -> Path:
    """An exported model as the pipeline writes one: the default backbone at ``resolution`` (default: the
    project's) under a linear head, through ``deployment.export.write_exported_model``. The head is random, or,
    given labelled images ``head_from``, points from each class's mean features to the other's: its answers are
    then confident, so a small change in the network shows as a changed label only where it matters."""
    from solar_cell_inspection.core.config import ProbeConfig
    from solar_cell_inspection.deployment.export import write_exported_model
    from solar_cell_inspection.modeling.model import new_classifier

    probe = ProbeConfig()
    resolution = resolution or probe.resolution
    metadata = {
        "classes": list(classes),
        "resolution": resolution,
        "resize": probe.resize,
        "backbone": probe.backbone,
        "classifier": "logistic_regression",
        "project": "benchmark",
    }
    model = new_classifier(probe.backbone, len(classes), resolution).eval()
    if head_from:
        _class_mean_head(model, head_from, classes, resolution, probe.resize)
    return write_exported_model(model, out_dir, metadata)


def _class_mean_head(model, labelled: list[tuple[Path, str]], classes, resolution: int, resize: str) -> None:
    """Each class's logit: closeness to its mean features, scaled so the means sit about 8 logits apart."""
    import torch
    from solar_cell_inspection.core.images import load_batch

    with torch.inference_mode():
        features = model.backbone(torch.from_numpy(load_batch([str(p) for p, _ in labelled], resolution, resize)))
    means = torch.stack([features[[label == name for _, label in labelled]].mean(0) for name in classes])
    scale = 8.0 / float(((means[0] - means[1]) ** 2).sum())
    with torch.no_grad():
        model.head.weight.copy_(means * scale)
        model.head.bias.copy_(-(means**2).sum(1) * scale / 2)


# Runs a command and writes its peak resident memory (KiB) to the file named first. A small process of its own, as
# Linux keeps a process's peak across exec: a child forked straight from a benchmark holding torch would inherit it.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(command: list[str], **popen) -> tuple[float, float, int]:
    """Run ``command`` as a child process: (seconds, its peak resident memory in MB, exit code)."""
    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        peak = Path(tmp) / "kib"
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", _MEASURE, str(peak), *command], **popen)
        seconds = time.perf_counter() - started
        return seconds, int(peak.read_text()) / 1024, code


def elpv_cells(count: int) -> list[tuple[Path, str]]:
    """``count`` ELPV solar-cell images (300 x 300 grayscale PNGs from the installed ``elpv-dataset``), spread evenly
    over the dataset so both classes are there, each with its label as the bundled sample gives it."""
    import elpv_dataset

    data = Path(elpv_dataset.__file__).parent / "data"
    rows = [line.split() for line in (data / "labels.csv").read_text().splitlines() if line.strip()]
    picked = [rows[i] for i in np.linspace(0, len(rows) - 1, min(count, len(rows))).astype(int)]
    return [(data / path, "defective" if float(p) >= 0.5 else "functional") for path, p, _ in picked]
