"""The benchmarks under bench/ keep running (on a few images; the real figures come from `make bench`)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_ingestion_benchmark_reports_a_ratio_to_its_baseline():
    result = subprocess.run(
        [sys.executable, str(BENCH / "ingest.py"), "--images", "300", "--size", "64"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["images"] == 300
    assert figures["baseline_plain_pil_loop_images_per_s"] > 0 and figures["manifest_vs_baseline"] > 0
    assert figures["duplicate_groups_found"] == 0, "random smooth images are not near-duplicates"
