"""The benchmarks under bench/ keep running (on a few images; the real figures come from `make bench`)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from .helpers import bake

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


def positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def assert_machine_named(figures: dict) -> None:
    machine = figures["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["onnxruntime"], machine
    assert len(machine["load_average_at_start"]) == len(machine["load_average_at_end"]) == 3, machine


def test_featurization_benchmark_compares_onnxruntime_with_torch_eager_on_the_same_images():
    figures = run_bench("featurize.py", "--images", "24", "--size", "80", "--resolution", "64", "--batch-size", "8")
    assert figures["images"] == 24 and figures["backbone"] == "efficientnet_lite0"
    for side in ("baseline_torch_eager", "onnxruntime"):
        assert positive(figures[side]["images_per_s"], figures[side]["model_only_images_per_s"]), figures
        assert 0 < figures[side]["decode_share_of_time"] < 1, figures
    assert positive(figures["onnxruntime_vs_torch_eager"], figures["onnxruntime_vs_torch_eager_model_only"])
    assert figures["max_feature_difference"] < 1e-3, "both sides must compute the same features"
    assert_machine_named(figures)


def test_backbone_benchmark_measures_bundled_and_timm_models_against_the_default():
    figures = run_bench(
        "backbones.py", "--images", "8", "--resolution", "64", "--backbones", "efficientnet_lite0,timm:convnext_atto"
    )
    rows = {row["backbone"]: row for row in figures["backbones"]}
    assert list(rows) == ["efficientnet_lite0", "timm:convnext_atto"] and figures["baseline"] == "efficientnet_lite0"
    assert rows["timm:convnext_atto"]["features"] == 320 and rows["efficientnet_lite0"]["weights"] == "pretrained"
    for row in rows.values():
        assert positive(row["images_per_s"], row["model_only_images_per_s"], row["onnx_mb"], row["parameters_millions"])
    assert rows["efficientnet_lite0"]["images_per_s_vs_baseline"] == 1.0
    assert_machine_named(figures)


def test_training_speed_benchmark_compares_our_loop_with_a_plain_one_and_breaks_the_gap_down():
    figures = run_bench(
        "train_speed.py",
        *("--images", "8", "--resolution", "32", "--batch-size", "4", "--steps", "3", "--rounds", "1"),
    )
    assert figures["images"] == 8 and figures["epochs"] == 2 and figures["steps"] == 4, "whole epochs of 2 batches"
    assert (figures["flips"], figures["augment_strength"]) == ("all", 0.5), "augmentation as the demo runs it on ELPV"
    assert positive(figures["baseline_plain_loop_images_per_s"], figures["ours_images_per_s"])
    assert positive(figures["ours_first_epoch_images_per_s"], figures["ours_later_epochs_images_per_s"])
    ratio = figures["ours_images_per_s"] / figures["baseline_plain_loop_images_per_s"]
    assert math.isclose(figures["ours_vs_baseline"], ratio, rel_tol=0.05), figures
    parts = figures["breakdown"]
    for name in ("decode_and_resize", "augment", "seed_epoch", "model_step", "loader_alone"):
        assert positive(*(v for k, v in parts.items() if k.startswith(name))), (name, parts)
    assert positive(parts["augmenter_images_per_s"], parts["decode_and_resize_images_per_s"])
    assert_machine_named(figures)


def test_service_benchmark_reports_latency_throughput_and_the_fraction_of_the_ceiling():
    figures = run_bench(
        "service.py",
        *("--requests", "48", "--single-requests", "10", "--ceiling-seconds", "1", "--resolution", "64"),
        *("--also-serve", "--max-batch 4 --max-wait-ms 0.5"),
    )
    assert positive(figures["ceiling_model_only_batch_32_images_per_s"])
    by_batch = figures["model_only_images_per_s_by_batch_size"]
    assert list(by_batch) == ["1", "2", "4", "8", "16", "32"] and positive(*by_batch.values()), by_batch
    assert by_batch["32"] == figures["ceiling_model_only_batch_32_images_per_s"]
    for mode in ("batching_on", "batching_off", "serve --max-batch 4 --max-wait-ms 0.5"):
        single, many = figures[mode]["single_client"], figures[mode]["clients_16"]
        assert single["requests"] == 10 and many["requests"] == 48 and many["failures"] == [], figures[mode]
        assert positive(single["p50_ms"], single["p99_ms"], many["requests_per_s"], many["fraction_of_ceiling"])
        assert 1 <= many["mean_batch_images"] <= (1 if mode == "batching_off" else 16), many
        assert single["p50_ms"] <= single["p99_ms"]
        assert positive(figures[mode]["service_peak_rss_mb"])
        assert (
            positive(many["fraction_of_best_model_only"])
            and many["fraction_of_best_model_only"] <= many["fraction_of_ceiling"]
        )
    assert figures["batching_off"]["serve_args"] == ["--max-batch", "1"]
    assert positive(figures["clients_16_fraction_of_ceiling_batching_on"], figures["batching_on_vs_off_clients_16"])
    assert_machine_named(figures)


def test_scorer_benchmark_measures_speed_and_peak_memory_of_each_run_against_a_plain_loop():
    figures = run_bench("scorer.py", "--images", "120", "--size", "32", "--resolution", "64")
    assert figures["images"] == figures["scorer_rows"] == 120 and figures["scorer_error_rows"] == 0
    runs = [figures["baseline_plain_onnxruntime_loop"], figures["scorer"], figures["scorer_on_30_images"]]
    for run in runs:
        assert positive(run["seconds"], run["images_per_s"]), run
        assert 30 < run["peak_rss_mb"] < 2000, f"the child's own peak, not this process's: {run}"
    assert positive(figures["scorer_vs_baseline_images_per_s"], figures["scorer_vs_baseline_peak_rss"])
    assert positive(figures["scorer_peak_rss_all_vs_quarter"])
    assert figures["labels_agree"] == 1.0 and figures["max_probability_difference"] < 1e-5
    assert_machine_named(figures)


def test_peak_memory_is_the_childs_own_not_inherited_from_a_large_parent():
    sys.path.insert(0, str(BENCH))
    from common import run_measured

    held = bytearray(400 * 1024 * 1024)  # this process is large, as a benchmark holding torch is
    small = run_measured([sys.executable, "-c", "pass"])
    large = run_measured([sys.executable, "-c", "x = bytearray(300 * 1024 * 1024)"])
    assert small[2] == large[2] == 0
    assert small[1] < 100 < 300 < large[1] < 400, (small, large, len(held))


def fake_demo_run(project: Path, run: Path) -> Path:
    """A run folder shaped like the demo's: a manifest of 40 ELPV cells (24 train, 16 val) and an exported model
    (the default backbone at 32 px under a random head with ELPV's classes), so the demo comparison takes seconds."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from common import build_default_model, elpv_cells; "
        "build_default_model(Path(sys.argv[2]) / 'model', 32, ('defective', 'functional')); "
        "print('\\n'.join(f'{path},{label}' for path, label in elpv_cells(40)))"
    )
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    made = subprocess.run(
        [sys.executable, "-c", script, str(BENCH), str(run)], env=env, capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stderr[-3000:]
    rows = made.stdout.split()
    lines = ["path,label,split,status", *(f"{row},{'train' if i < 24 else 'val'},ok" for i, row in enumerate(rows))]
    (run / "manifest.csv").write_text("\n".join(lines) + "\n")
    return run


def test_int8_benchmark_compares_speed_agreement_and_the_demos_validation_accuracy(tmp_path):
    project = bake(tmp_path / "bake")  # its own: importing the package writes __pycache__ into the bake
    demo = fake_demo_run(project, tmp_path / "demo")
    figures = run_bench("int8.py", "--images", "40", "--seconds", "2", "--resolution", "32", "--demo", str(demo))
    for name in ("built_model", "demo_model"):
        model = figures[name]
        assert positive(*model["batch_32_images_per_s"].values(), model["int8_vs_fp32_images_per_s"]), model
        assert model["model_mb"]["int8"] < model["model_mb"]["fp32"], "weights stored as int8 are smaller"
        assert 0 <= model["labels_agree"] <= 1 and 0 <= model["max_probability_gap"] <= 1, model
        assert model["calibration_images"] > 0 and model["resolution"] == 32
    assert figures["built_model"]["images_compared"] == 40
    assert figures["demo_model"]["images_compared"] == 16, "the demo's validation images"
    accuracy = figures["demo_model"]["val_accuracy"]
    assert accuracy["images"] == 16 and 0 <= accuracy["fp32"] <= 1 and 0 <= accuracy["int8"] <= 1
    assert not (demo / "model" / "model.int8.onnx").exists(), "the demo's folder is only read"
    assert_machine_named(figures)


def test_label_noise_benchmark_finds_flipped_digits_with_both_rankers():
    figures = run_bench(
        "label_noise.py",
        *("--datasets", "digits", "--per-class", "12", "--rates", "0.1", "--seeds", "0", "--resolution", "32"),
    )
    digits = figures["digits"]
    assert digits["images"] == 120 and digits["classes"] == 10 and "elpv" not in figures
    noisy = digits["by_rate"]["0.1"]
    assert figures["baseline"] == "probability"
    for ranker in ("probability", "cleanlab"):
        for group in ("train_val", "test"):
            counts = noisy[ranker][group]
            assert 0 <= counts["found_in_top_k"] <= counts["flipped"] <= counts["images"], (ranker, group, counts)
            assert counts["flagged_flipped"] <= min(counts["flagged"], counts["flipped"]), (ranker, group, counts)
        flipped = noisy[ranker]["train_val"]["flipped"] + noisy[ranker]["test"]["flipped"]
        assert flipped + noisy["flipped_left_out_by_acquisition"] == 12, "every flip is counted once"
    found = noisy["probability"]["train_val"]["found_in_top_k"] + noisy["probability"]["test"]["found_in_top_k"]
    assert found > 12 * 0.1 * 2, "the review finds far more flips among its top k than chance would"
    assert_machine_named(figures)


def test_incremental_benchmark_reruns_nothing_when_nothing_changed():
    """One change, to keep make test short: which stages each change re-runs is the baked project's own
    tests/integration/test_incremental.py; here, that the benchmark runs and reports its ratio."""
    figures = run_bench("incremental.py", "--tiny", "--scenarios", "nothing")
    first, nothing = figures["changes"]
    assert figures["profile"] == "smoke" and len(first["stages_run"]) == 9, first
    assert nothing["stages_run"] == [] and nothing["vs_full_run"] < 0.5, nothing
    assert_machine_named(figures)


def test_accuracy_benchmark_compares_every_recipe_on_the_same_images():
    """The yardstick on a few digits: the probe rows, the baseline and fastai's schedule (plain loops of their own,
    not the project's training code), today's and the new recipe, the post-hoc candidates and the shipped model."""
    figures = run_bench("accuracy.py", "--tiny")
    rows = figures["collections"]["digits"]
    from_probe = {"probe_average", "probe_bilinear", "probe_multistage", "probe_auto_today", "probe_auto_new"}
    trained = {"tutorial", "fastai", "today", "new"}
    assert set(rows) == from_probe | trained | {"views", "fixres", "ensemble", "new+ensemble", "shipped"}
    for name, row in rows.items():
        assert 0 <= row["val_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1, (name, row)
        assert row["seeds"] == 1 and "test_balanced_accuracy" in row, (name, row)
    assert all(rows[name]["seconds"] > 0 for name in trained), rows
    chosen = rows["probe_auto_new"]["runs"][0]["pooling"]
    assert rows["probe_auto_new"]["val_accuracy"] == rows[f"probe_{chosen}"]["val_accuracy"], "auto takes the best"
    shipped = rows["shipped"]["val_accuracy"]
    assert shipped == max(rows[r]["val_accuracy"] for r in ("probe_auto_new", "new", "new+ensemble")), rows
    assert figures["wall_seconds"] > 0 and figures["images"]["digits"]["test"] == 24
