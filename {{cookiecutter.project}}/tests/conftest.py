"""The tests' fixtures: tiny real images, a tiny exported model, a real MLflow server. What they are made of lives
in ``helpers``; tests import plain helpers from there, never from this file."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers.images import write_stripes_dataset
from helpers.models import TINY_METADATA, build_tiny_classifier
from helpers.parallel import handed_out, scheduler, share_the_cores
from helpers.pipeline import digest, pipeline_command
from helpers.servers import running_mlflow_server

from {{ cookiecutter.package }}.deployment.export import write_exported_model
from {{ cookiecutter.package }}.modeling.model import ImageClassifier

# Tests track into a store of their own, never the project's mlruns.db; subprocesses inherit it.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='test-mlruns-')}/mlruns.db"


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: called only when the tests run on workers (-n)
def pytest_xdist_make_scheduler(config, log):
    return scheduler(config, log)


def pytest_configure(config):
    share_the_cores(config)


def pytest_addoption(parser):
    parser.addoption("--run-all", action="store_true", help="also Run All with the defaults (minutes: test_run_all)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--run-all"):
        skip = pytest.mark.skip(reason="Run All with the defaults takes minutes: make test-defaults")
        for item in items:
            if item.get_closest_marker("run_all"):
                item.add_marker(skip)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker's collection: the scheduler hands it out in this order
        items.sort(key=lambda item: handed_out(item.nodeid))  # stable: each file keeps its order


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stripes_dataset(tmp_path_factory.mktemp("tiny_images"))


@pytest.fixture(scope="session")
def tiny_classifier() -> ImageClassifier:
    """Bundled pretrained backbone at 32 px and a random two-class head."""
    return build_tiny_classifier()


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory, tiny_classifier: ImageClassifier) -> Path:
    return write_exported_model(tiny_classifier, tmp_path_factory.mktemp("model"), TINY_METADATA)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store, artifacts served by the server); yields its URL."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="session")
def smoke_run(tiny_images, tmp_path_factory, mlflow_server):
    """The smoke pipeline on the tiny images, tracked on a real MLflow server: its run folder and what it printed.
    ``pristine`` is a copy taken at once, for tests that change a run (some tests re-execute notebooks in it)."""
    out = tmp_path_factory.mktemp("run")
    before = digest(tiny_images)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    result = subprocess.run(pipeline_command(tiny_images, out), capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert digest(tiny_images) == before, "the pipeline changed the source images"
    shutil.copytree(out, pristine(tmp_path_factory))
    return out, result.stdout


def pristine(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "pristine-smoke-run"


@pytest.fixture
def pristine_run(smoke_run, tmp_path_factory, tmp_path) -> Path:
    """A copy of the finished smoke run, as it was when the pipeline ended."""
    return Path(shutil.copytree(pristine(tmp_path_factory), tmp_path / "run"))
