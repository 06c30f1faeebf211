"""Run All, as a person does in JupyterLab: the nine notebooks in order, each with its defaults (the bundled data
in full, every epoch), only the run folder and the feature cache in folders of the test's own. Minutes, not
seconds: ``make test-defaults`` runs it (``pytest --run-all``); ``make test`` skips it."""

import json

import nbformat
import pytest
from helpers.notebooks import noise, with_parameters
from nbclient import NotebookClient

from {{ cookiecutter.package }}.orchestration.pipeline import notebook_paths

pytestmark = pytest.mark.run_all


def test_run_all_with_the_defaults_shows_no_warning(tmp_path):
    run = tmp_path / "run"
    own = {"RUN_DIR": str(run), "FEATURE_CACHE": str(tmp_path / "features")}  # the names a notebook lacks are skipped
    shown = []
    for source in notebook_paths():
        copy = with_parameters(source, tmp_path / "notebooks" / source.name, own)
        document = nbformat.read(copy, as_version=4)
        where = {"metadata": {"path": str(source.parent)}}  # the kernel starts in the notebook's folder, as in the Lab
        NotebookClient(document, timeout=3600, kernel_name="python3", resources=where).execute()
        nbformat.write(document, copy)
        shown += noise(copy)
    assert shown == []
    recorded = {path.stem for path in (run / "results").glob("*.json")}
    assert recorded == {path.stem for path in notebook_paths()}, "every notebook ran to its end"
    assert json.loads((run / "metrics.json").read_text())["n_test"] > 0
