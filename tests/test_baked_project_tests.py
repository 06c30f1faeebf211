"""The baked projects' own test suites, run inside them: the default bake runs all of its suite; the other
dataset bakes run what differs between bakes (tests marked ``bake``: their sample, their parameters cells and
configs), since everything else is the same code on the same test images. The whole suite runs as the baked
``make test`` runs it, on pytest-xdist workers."""

import os
import subprocess
import sys

import pytest

from .helpers import bake, installed_editable


@pytest.mark.parametrize(
    ("dataset", "selection"),
    [("elpv", ["-n", "auto", "--maxprocesses", "4"]), ("digits", ["-m", "bake"]), ("folder", ["-m", "bake"])],
)
def test_baked_project_passes_its_own_tests(tmp_path, dataset, selection):
    project = bake(tmp_path, project=f"probe-{dataset}", dataset=dataset)
    # a suite of its own: not one of this run's xdist workers (its own workers share the cores between them)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    with installed_editable(project):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
    tail = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and " failed" not in result.stdout, tail
