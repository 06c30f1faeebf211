"""The pipeline re-runs only what changed, with real papermill runs on tiny images: every test starts from a copy
of the finished smoke run (the notebook tests' own) and checks which stages the next ``pipeline`` runs, and why."""

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
from helpers.images import stripes
from helpers.pipeline import pipeline_command

import {{ cookiecutter.package }} as package
from {{ cookiecutter.package }}.core.paths import project_root
from {{ cookiecutter.package }}.core.stages import STAGES

pytestmark = pytest.mark.notebooks
STATES = ("up to date", "never run", "stale", "failed", "interrupted")
LINE = re.compile(r"^\[\d+/\d+\] (?P<notebook>\S+)\.ipynb: (?P<verdict>up to date|runs \((?P<why>.*)\))$")


def pipeline(data: Path, out: Path, *extra: str) -> str:
    result = subprocess.run(pipeline_command(data, out, *extra), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def verdicts(stdout: str) -> dict[str, str]:
    """Each stage's line: 'up to date' or why it ran."""
    found = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            found[match["notebook"].split("/")[-1]] = match["why"] or "up to date"
    return found


def ran(stdout: str) -> list[str]:
    return [name for name, why in verdicts(stdout).items() if why != "up to date"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def edited(path: Path, change):
    """``path`` changed by ``change(text) -> text`` for the block, then restored byte for byte."""
    original = path.read_bytes()
    path.write_text(change(original.decode("utf-8")), encoding="utf-8")
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.fixture
def data(tiny_images) -> Path:
    return tiny_images  # the smoke run's images: the same DATA_DIR, so only what a test changes differs


@pytest.fixture
def run(pristine_run) -> Path:
    return pristine_run


def test_nothing_changed_runs_no_notebook(data, run):
    before = snapshot(run / "notebooks")
    stdout = pipeline(data, run)
    assert verdicts(stdout) == {s.name: "up to date" for s in STAGES}
    assert snapshot(run / "notebooks") == before, "an executed notebook was written again"
    assert states(run) == {s.name: "up to date" for s in STAGES}


def states(run: Path, *extra: str) -> dict[str, str]:
    """Each stage's state as ``status`` prints it."""
    command = [sys.executable, "-m", package.__name__, "status", "--run-dir", str(run), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    found = {}
    for line in result.stdout.splitlines():
        name, _, rest = line.partition(" ")
        if name in {stage.name for stage in STAGES}:  # --graph adds the pictures' paths below the table
            found[name] = next(state for state in STATES if rest.strip().startswith(state))
    return found


def test_status_on_a_fresh_project_folder(tmp_path):
    assert states(tmp_path / "nothing-here-yet") == {s.name: "never run" for s in STAGES}
    assert not (tmp_path / "nothing-here-yet").exists(), "status writes nothing without --graph"


def test_a_markdown_cell_changes_nothing_and_a_code_cell_reruns_its_stage(data, run):
    evaluate = project_root() / "code" / "02_modeling" / "03_evaluate.ipynb"
    add_sentence = lambda text: text.replace("**TDSP stage: modeling.**", "**TDSP stage: modeling.** Read on.", 1)  # noqa: E731
    with edited(evaluate, add_sentence):
        assert ran(pipeline(data, run)) == []
    compare = project_root() / "code" / "02_modeling" / "04_compare_runs.ipynb"
    cell = '"source": "run = RunFolder.open(RUN_DIR)'
    with edited(compare, lambda text: text.replace(cell, f"{cell}  # a note", 1)):
        stdout = pipeline(data, run)
    assert verdicts(stdout)["04_compare_runs"] == "its notebook's code cells changed"
    assert ran(stdout) == ["04_compare_runs"]  # it feeds no other stage


def test_a_package_module_a_stage_imports_reruns_that_stage(data, run):
    module = Path(package.__file__).parent / "orchestration" / "compare.py"  # imported by 04_compare_runs only
    with edited(module, lambda text: text + "\n# touched by a test\n"):
        stdout = pipeline(data, run)
    assert ran(stdout) == ["04_compare_runs"]
    assert verdicts(stdout)["04_compare_runs"] == "orchestration/compare.py changed"


def test_an_evaluation_parameter_reruns_evaluation_and_what_it_feeds_only(data, run):
    """Stopped once the export starts: what matters is what ran before it (nothing upstream) and that it runs."""
    extra = ("-p", "TARGET_CLASS", "horizontal", "-p", "TARGET_RECALL", "0.9")
    stdout = run_until(pipeline_command(data, run, *extra), "01_export.ipynb: runs")
    said = verdicts(stdout)
    assert said["03_evaluate"] == "TARGET_CLASS '' -> 'horizontal'; TARGET_RECALL 0.0 -> 0.9"
    assert ran(stdout) == ["03_evaluate", "04_compare_runs", "01_export"], "nothing upstream of evaluation ran"
    assert said["01_export"] == "metrics.json changed", "the threshold travels with the exported model"
    assert json.loads((run / "metrics.json").read_text())["decision"]["class"] == "horizontal"


def run_until(command: list[str], marker: str, ready=lambda: True) -> str:
    """Run a pipeline until a line holding ``marker`` (and ``ready()``), then kill it and its kernels; what it
    printed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            deadline = time.monotonic() + 120
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.01)
            kill_with_its_kernels(process)
            break
    process.wait(60)
    return "".join(lines)


def kill_with_its_kernels(process: subprocess.Popen) -> None:
    """SIGKILL a pipeline and everything it started, the kernel first: kernels run in sessions of their own and
    would otherwise go on for up to a second (until they notice their parent is gone)."""
    pipeline = psutil.Process(process.pid)
    for member in [*pipeline.children(recursive=True), pipeline]:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()


def test_a_killed_run_resumes_at_the_stage_it_was_in_and_a_second_pipeline_is_refused(data, run):
    """Killed during fine-tuning; started again: acquisition, review and the probe are not run again, fine-tuning
    goes on from its last epoch, and the metrics equal those of the run that was never interrupted (stopped once
    evaluation has written them). Meanwhile a second pipeline on the same folder stops at once, naming the process
    that holds it."""
    uninterrupted = comparable(run / "metrics.json")
    shutil.rmtree(run / "models" / "fine_tuned")  # as if fine-tuning had not been reached
    checkpoint = run / "models" / "fine_tuned" / "last.pt"  # written (atomically) at the end of each epoch
    # Killed (kernel too) as soon as the first epoch's checkpoint appears: watched on disk, not through the
    # printed progress, which can lag behind by more than the second epoch takes on tiny images.
    run_until(pipeline_command(data, run, "--from", "02_fine_tune"), "02_fine_tune.ipynb: runs", checkpoint.is_file)
    half = states(run, "--graph")  # the run as the kill left it
    assert half["01_linear_probe"] == "up to date" and half["02_fine_tune"] == "interrupted"
    assert (run / "stages" / "graph.png").stat().st_size > 10_000
    assert "02_fine_tune<br/>interrupted" in (run / "stages" / "graph.mmd").read_text()
    again = subprocess.Popen(pipeline_command(data, run), stdout=subprocess.PIPE, text=True)
    lines = [again.stdout.readline()]  # the first stage's verdict: it holds the lock by now
    started = time.monotonic()
    second = subprocess.run(pipeline_command(data, run), capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and time.monotonic() - started < 60
    assert f"{run} is in use by pipeline process {again.pid}" in second.stderr
    for line in again.stdout:  # until evaluation, the last stage that writes metrics.json, has finished
        lines.append(line)
        if "04_compare_runs.ipynb:" in line:
            kill_with_its_kernels(again)
            break
    again.wait(60)
    stdout = "".join(lines)
    assert "04_compare_runs.ipynb:" in stdout, stdout[-3000:]
    said = verdicts(stdout)
    before = ("01_acquire_data", "02_explore_and_review", "01_linear_probe")
    assert [said[name] for name in before] == ["up to date"] * 3
    assert said["02_fine_tune"].startswith("interrupted last time")
    assert "1 epoch(s) done, continuing" in stdout
    assert comparable(run / "metrics.json") == uninterrupted


def comparable(metrics: Path) -> dict:
    """metrics.json without the paths that name its run folder."""
    values = json.loads(metrics.read_text())
    return {k: v for k, v in values.items() if k not in ("run_dir", "model_dir")}


def test_an_added_image_reruns_acquisition_and_what_it_feeds_with_features_from_the_cache(data, run):
    """Stopped once fine-tuning starts: what matters here is what ran before it, and why."""
    new = data / "horizontal" / "added.png"
    stripes(True, 32, np.random.default_rng(99)).save(new)
    try:
        stdout = run_until(pipeline_command(data, run), "02_fine_tune.ipynb: runs")
    finally:
        new.unlink()
    said = verdicts(stdout)
    assert said["01_acquire_data"] == "data source: 1 added file(s)"
    assert said["01_linear_probe"] == "manifest.csv changed"
    assert said["02_explore_and_review"].startswith("manifest.csv changed")
    assert re.search(r"features \S+ 96 px crop average: \d+ cached, 1 to compute", stdout)
