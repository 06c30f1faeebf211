"""The incremental pipeline: which stages each kind of change re-runs, and its wall time beside the full run's.

    .venv/bin/python bench/incremental.py [--profile demo] [--tiny] [--scenarios nothing,evaluation,...]

Bakes the default project into a temporary folder and runs ``python -m <package> pipeline`` in it, on one run
folder, a change at a time: the full first run (the baseline: what every run cost before the pipeline kept
track), then nothing changed, an evaluation parameter (a decision threshold), a fine-tuning parameter (the
learning rate), 10 images added to the data, one package module touched (``deployment/report.py``). Each
change keeps the ones before it. Prints one JSON object: per change, the stages that ran and the wall time,
and its ratio to the full run. ``--tiny`` runs on 24 generated images with the smoke profile (for the tests).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCENARIOS = ("nothing", "evaluation", "fine_tune", "images", "module")
LINE = re.compile(r"^\[\d+/\d+\] \S+/(?P<stage>\S+)\.ipynb: (?P<verdict>up to date|runs \((?P<why>.*)\))$")


def pipeline(project: Path, args: list[str]) -> tuple[list[dict], float]:
    """One ``pipeline`` run: the stages it ran (and why) and its wall time."""
    command = [sys.executable, "-m", common.PACKAGE, "pipeline", "--out", "runs/bench", *args]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=7200)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pipeline failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    lines = [LINE.match(line) for line in result.stdout.splitlines()]
    ran = [{"stage": m["stage"], "why": m["why"]} for m in lines if m and m["why"]]
    return ran, seconds


def add_images(folder: Path, count: int) -> None:
    """``count`` new images: mirrored copies of existing ones (new content, the same kind of image)."""
    existing = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for i, path in enumerate(existing[:count]):
        with Image.open(path) as image:
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path.with_name(f"bench-added-{i}.png"))


def touch_module(project: Path) -> None:
    module = project / "src" / common.PACKAGE / "deployment" / "report.py"
    module.write_text(module.read_text() + "\n# touched by bench/incremental.py\n")


def tiny_images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label in ("horizontal", "vertical"):
        (root / label).mkdir(parents=True)
        for i in range(12):
            y, x = np.mgrid[0:32, 0:32]
            across = (y if label == "horizontal" else x) + rng.uniform(0, 6)
            pixels = ((across / rng.uniform(4, 8)) % 1 < 0.5) * 200 + rng.normal(28, 12, (32, 32))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / label / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--tiny", action="store_true", help="24 generated images, smoke profile")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"which changes, of {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        project = common.bake(Path(tmp))
        settings = ["--profile", "smoke" if args.tiny else args.profile]
        if args.tiny:
            settings += ["--data-dir", str(tiny_images(Path(tmp) / "images"))]
        figures = {"profile": settings[1], "machine": common.machine(load), "changes": []}
        ran, full = pipeline(project, settings)
        figures["changes"].append({"change": "first run (every stage: the baseline)", "seconds": round(full, 1)})
        figures["changes"][0]["stages_run"] = [r["stage"] for r in ran]
        classes = json.loads((project / "runs" / "bench" / "metrics.json").read_text())["classes"]
        data = Path(settings[-1]) if args.tiny else project / "data" / "raw" / "elpv"
        changes = {
            "nothing": ("nothing changed", lambda: []),
            "evaluation": (
                "an evaluation parameter",
                lambda: ["-p", "TARGET_CLASS", classes[0], "-p", "TARGET_RECALL", "0.9"],
            ),
            "fine_tune": ("a fine-tuning parameter", lambda: ["-p", "LEARNING_RATE", "0.002"]),
            "images": ("10 images added", lambda: add_images(data, 10) or []),
            "module": ("one package module touched (deployment/report.py)", lambda: touch_module(project) or []),
        }
        extra: list[str] = []
        for name in args.scenarios.split(","):
            label, make = changes[name]
            extra += make()
            ran, seconds = pipeline(project, settings + extra)
            row = {"change": label, "stages_run": ran, "seconds": round(seconds, 1)}
            figures["changes"].append({**row, "vs_full_run": round(seconds / full, 3)})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
