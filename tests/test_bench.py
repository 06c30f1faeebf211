"""The benchmarks under bench/ keep running (on a few images; the real figures come from `make bench`)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str) -> dict:
    """Run a benchmark script and return the JSON it prints."""
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_ingestion_benchmark_reports_a_ratio_to_its_baseline():
    figures = run_bench("ingest.py", "--images", "300", "--size", "64")
    assert figures["images"] == 300
    assert figures["baseline_plain_pil_loop_images_per_s"] > 0 and figures["manifest_vs_baseline"] > 0
    assert figures["duplicate_groups_found"] == 0, "random smooth images are not near-duplicates"


def test_resize_measurement_reports_every_mode_and_square_images_agree():
    report = run_bench("resize.py", "--elpv-images", "80", "--backbones", "efficientnet_lite0")
    photos = report["photos"]["efficientnet_lite0"]
    assert set(photos) == {"stretch", "crop", "pad"}
    assert all(m["photos"] >= 6 and m["top5_hits"] >= m["photos"] // 2 for m in photos.values()), photos
    elpv = report["elpv_val_accuracy_probe_average_pooling"]
    assert elpv["stretch"] == elpv["crop"] == elpv["pad"], "ELPV cells are square: every mode sees the same image"
