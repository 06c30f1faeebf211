"""The template tests' fixtures; what they are made of (``bake``, ``installed_editable``) lives in ``helpers``."""

from pathlib import Path

import pytest

from .helpers import bake


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))
