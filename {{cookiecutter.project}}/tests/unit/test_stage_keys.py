"""What a stage's key is made of, the graph derived from what stages read and write, and the run-folder lock."""

import json
import multiprocessing
import os
import signal
import time

import pytest

from {{ cookiecutter.package }}.core import fingerprints, stage_records
from {{ cookiecutter.package }}.core.config import FineTuneConfig
from {{ cookiecutter.package }}.core.paths import project_root
from {{ cookiecutter.package }}.core.run_folder import RunFolder
from {{ cookiecutter.package }}.core.stages import STAGES, downstream, feeds, mermaid, stage
from {{ cookiecutter.package }}.orchestration.lock import RunFolderInUse, RunFolderLock

FINE_TUNE = project_root() / "code" / stage("train").notebook


def notebook_with(tmp_path, edit) -> tuple[str, str]:
    """The fine-tune notebook's code digest before and after ``edit`` changes a copy of it."""
    copy = tmp_path / "copy.ipynb"
    document = json.loads(FINE_TUNE.read_text())
    edit(document["cells"])
    copy.write_text(json.dumps(document))
    return fingerprints.code_cells(FINE_TUNE), fingerprints.code_cells(copy)


def append(cell: dict, text: str) -> None:
    cell["source"] = "".join(cell["source"]) + text


def first(cells, kind):
    return next(c for c in cells if c["cell_type"] == kind and "parameters" not in c["metadata"].get("tags", []))


@pytest.mark.parametrize(
    "edit",
    [
        lambda cells: append(first(cells, "markdown"), "\nA sentence more."),
        lambda cells: first(cells, "code").update(outputs=[{"output_type": "stream", "name": "stdout", "text": "x"}]),
        lambda cells: first(cells, "code").update(execution_count=42, metadata={"collapsed": True}),
        lambda cells: append(next(c for c in cells if "parameters" in c["metadata"].get("tags", [])), "  # note"),
    ],
    ids=["markdown", "outputs", "execution-count-and-metadata", "parameters-cell"],
)
def test_what_is_not_code_does_not_change_the_key(tmp_path, edit):
    before, after = notebook_with(tmp_path, edit)
    assert before == after


def test_a_code_cell_changes_the_key(tmp_path):
    before, after = notebook_with(tmp_path, lambda cells: append(first(cells, "code"), "\nx = 1"))
    assert before != after


def test_the_modules_a_notebook_imports_are_followed_transitively():
    modules = fingerprints.package_modules(FINE_TUNE)
    assert "modeling/steps.py" in modules  # imported by the notebook
    assert "modeling/augment.py" in modules  # steps -> train -> augment
    assert "core/choices.py" in modules  # ... -> core
    assert "deployment/service/app.py" not in modules and "acquisition/review.py" not in modules


def test_parameters_are_read_from_the_config_by_the_names_the_notebook_declares():
    values = stage_records.parameters_of(stage("train"), FineTuneConfig(learning_rate=0.003))
    assert values["LEARNING_RATE"] == 0.003 and values["FLIPS"] == "auto"
    assert "RUN_DIR" not in values and len(values) == len(fingerprints.declared_parameters(FINE_TUNE)) - 1


def test_file_digests_are_computed_again_only_when_a_file_changes(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    digests = fingerprints.FileDigests(tmp_path / "cache.json")
    first_digest = digests.file(image)
    digests.save()
    cached = fingerprints.FileDigests(tmp_path / "cache.json")
    assert cached.file(image) == first_digest and not cached.changed  # read from the cache, not the file
    image.write_bytes(b"two")  # same size, new content and modification time
    assert cached.file(image) != first_digest


def test_changes_are_said_in_words():
    before = {"code": "a", "parameters": {"LEARNING_RATE": 0.001, "FLIPS": "auto"}, "inputs": {}, "modules": {}}
    before |= {"libraries": {"numpy": "2.2.6"}}
    now = json.loads(json.dumps(before))
    now["parameters"]["LEARNING_RATE"] = 0.003
    now["inputs"] = {"manifest.csv": {"": "x"}}
    now["modules"] = {"modeling/train.py": "y"}
    now["libraries"]["numpy"] = "2.3.0"
    assert stage_records.changes(before, now) == [
        "LEARNING_RATE 0.001 -> 0.003",
        "manifest.csv changed",
        "modeling/train.py changed",
        "numpy 2.2.6 -> 2.3.0",
    ]


def test_the_graph_is_derived_from_what_stages_read_and_write(tmp_path):
    run = RunFolder(tmp_path)
    edges = feeds(run)
    assert edges["01_acquire_data"] == []
    assert edges["01_linear_probe"] == ["01_acquire_data"]
    assert edges["03_evaluate"] == ["01_acquire_data", "01_linear_probe", "02_fine_tune"]  # models/ holds both
    assert edges["02_batch_score"] == ["01_acquire_data", "01_export"]
    assert downstream(run, {"03_evaluate"}) == {"04_compare_runs", "01_export", "02_batch_score", "03_web_service"}
    assert all(set(edges[s.name]) < {t.name for t in STAGES[:i]} | {""} for i, s in enumerate(STAGES)), "order"


def hold_lock(root, ready):
    with RunFolderLock(RunFolder(root)):
        ready.set()
        time.sleep(600)


def test_a_second_pipeline_is_refused_while_the_first_holds_the_folder_and_not_after_it_dies(tmp_path):
    ready = multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=hold_lock, args=(tmp_path, ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunFolderInUse, match=rf"{tmp_path} is in use by pipeline process {holder.pid} on "):
            RunFolderLock(RunFolder(tmp_path)).__enter__()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: no clean-up runs
        holder.join()
    with RunFolderLock(RunFolder(tmp_path)):  # the system released the dead holder's lock
        pass


def test_the_readme_shows_the_graph_as_it_is_declared(tmp_path):
    readme = (project_root() / "README.md").read_text()
    assert f"```mermaid\n{mermaid(RunFolder(tmp_path))}```" in readme
