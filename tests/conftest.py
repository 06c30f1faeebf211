"""The template tests' fixtures; what they are made of (``bake``, ``installed_editable``) lives in ``helpers``."""

import os
from pathlib import Path

import pytest

from .helpers import bake


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))


def pytest_configure(config):
    """On xdist workers, each test's child processes (benchmarks, pipelines) start a torch thread pool of the
    worker's share of the cores, not one thread per core: more threads than cores spin waiting on each other. The
    baked suites' own workers keep to a core share of their own (their ``tests/helpers/parallel.py``)."""
    worker = getattr(config, "workerinput", None)
    if worker:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // int(worker["workercount"]))))


def pytest_collection_modifyitems(items):
    """On xdist workers (``make test``), the default bake's whole suite first: it is the longest by far, and the
    other workers take (or steal) the rest meanwhile."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: "passes_its_own_tests[elpv" not in item.nodeid)
