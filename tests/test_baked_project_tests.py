"""Each bake's own test suite, run inside it: unit tests, then its notebooks (papermill + nbval)."""

import subprocess
import sys

import pytest

from .conftest import bake, installed_editable


@pytest.mark.parametrize("dataset", ["elpv", "digits", "folder"])
def test_baked_project_passes_its_own_tests(tmp_path, dataset):
    project = bake(tmp_path, project=f"probe-{dataset}", dataset=dataset)
    with installed_editable(project):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    tail = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and " failed" not in result.stdout, tail
