"""The template tests' fixtures; what they are made of (``bake``, ``installed_editable``) lives in ``helpers``."""

import os
from pathlib import Path

import pytest

from .helpers import bake


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))


def pytest_collection_modifyitems(items):
    """On xdist workers (``make test``), the default bake's whole suite first: it is the longest by far, and the
    other workers take (or steal) the rest meanwhile."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: "passes_its_own_tests[elpv" not in item.nodeid)
