"""Experiment tracking with MLflow: every run folder is one MLflow run, each candidate model a nested run.

The run folder remembers its MLflow run (``tracking.json``), so notebooks executed one by one, each in its own
kernel (JupyterLab or papermill), log into the same MLflow run. The store is a SQLite database in the project
(``mlruns.db``, artifacts in ``mlartifacts/``) unless ``MLFLOW_TRACKING_URI`` points at a team's
``mlflow server``. MLflow is imported only when something is logged: scoring and serving never load it.
"""

import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path

from .errors import TrackingError
from .paths import project_root, resolve

DEFAULT_STORE = "mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{resolve(DEFAULT_STORE)}"


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> None:
    """A tracking server that does not answer stops the run before any work, naming the URI."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
    except requests.RequestException as error:
        raise TrackingError(
            f"The MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer: {type(error).__name__}. "
            f"Start it, or unset MLFLOW_TRACKING_URI to track in the project's {DEFAULT_STORE}."
        ) from None


def artifact_location(uri: str) -> str | None:
    """Artifacts of a local SQLite store sit beside the database (not in whatever folder a kernel runs in);
    a server keeps its own."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / DEFAULT_ARTIFACTS).as_uri()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit(folder: Path) -> str:
    """The project's commit when it is a git repository ('' otherwise)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


class Tracker:
    """The MLflow run of one run folder; ``child(name)`` is a nested run for a candidate model."""

    def __init__(self, run) -> None:
        from mlflow import MlflowClient

        # The store's routine (setting up a new database, waiting for a registered version) is logged at INFO on
        # stderr, in whichever notebook does it: not news. Warnings and errors still show.
        logging.getLogger("mlflow.store").setLevel(logging.WARNING)

        self.run, self.uri = run, tracking_uri()
        check_reachable(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        state = json.loads(run.tracking.read_text()) if run.tracking.is_file() else {}
        if state.get("uri") != self.uri:  # a new store: start afresh there
            state = {"uri": self.uri, "run_id": self._start(), "children": {}}
        self.state = state
        self._save()

    @property
    def run_id(self) -> str:
        return self.state["run_id"]

    def _experiment(self) -> str:
        from .. import PROJECT_NAME

        found = self.client.get_experiment_by_name(PROJECT_NAME)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(PROJECT_NAME, artifact_location=artifact_location(self.uri))

    def _start(self) -> str:
        tags = {"run_dir": str(self.run.root)}
        commit = git_commit(project_root())
        if commit:
            tags["mlflow.source.git.commit"] = commit
        return self.client.create_run(self._experiment(), run_name=self.run.root.name, tags=tags).info.run_id

    def _save(self) -> None:
        self.run.tracking.write_text(json.dumps(self.state, indent=2))

    def child(self, name: str) -> str:
        """A fresh nested run for candidate ``name`` (each training of it gets its own)."""
        tags = {"mlflow.parentRunId": self.run_id, "candidate": name}
        experiment = self.client.get_run(self.run_id).info.experiment_id
        run_id = self.client.create_run(experiment, run_name=name, tags=tags).info.run_id
        self.state["children"][name] = run_id
        self._save()
        return run_id

    def child_of(self, name: str) -> str | None:
        return self.state["children"].get(name)

    def params(self, values: dict[str, object], run_id: str | None = None) -> None:
        """Parameters by the names users write; a value changed by a re-run in the same folder is noted, not fatal."""
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        run_id = run_id or self.run_id
        logged = self.client.get_run(run_id).data.params
        new = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in values.items()}
        changed = {k: v for k, v in new.items() if k in logged and logged[k] != v}
        fresh = [Param(k, v) for k, v in new.items() if k not in logged]
        if fresh:
            try:
                self.client.log_batch(run_id, params=fresh)
            except MlflowException as error:
                print(f"tracking: parameters not logged ({error})")
        for name, value in changed.items():
            self.client.set_tag(run_id, f"changed.{name}", value)
            print(f"tracking: {name} changed to {value!r} in the same run folder (kept as a tag); use a new RUN_DIR")

    def metrics(self, values: dict[str, float], step: int | None = None, run_id: str | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in values.items() if v == v]  # NaN is not logged
        if batch:
            self.client.log_batch(run_id or self.run_id, metrics=batch)

    def tags(self, values: dict[str, object], run_id: str | None = None) -> None:
        for key, value in values.items():
            self.client.set_tag(run_id or self.run_id, key, str(value))

    def artifacts(self, path: Path, artifact_path: str | None = None, run_id: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id or self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(run_id or self.run_id, str(path), artifact_path)

    def finish(self) -> None:
        for run_id in (*self.state["children"].values(), self.run_id):
            self.client.set_terminated(run_id)


def parameters(config: object) -> dict[str, object]:
    """A config's values by the notebook parameter names, ready to log."""
    from dataclasses import fields

    from .config import parameter_names

    names = parameter_names(type(config))
    return {names[f.name]: getattr(config, f.name) for f in fields(config)}
