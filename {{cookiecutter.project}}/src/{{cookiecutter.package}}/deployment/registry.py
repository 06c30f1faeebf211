"""The model registry (MLflow): each run's chosen model is registered under the project's name with the alias
``candidate``; ``promote`` moves ``champion``; ``score`` and ``serve`` take ``models:/<name>@<alias>`` or
``models:/<name>/<version>`` as well as a folder (``resolve_model``). MLflow is imported only for a registry URI.
"""

import json
import re
import tempfile
from pathlib import Path

from ..core.tracking import check_reachable, tracking_uri

REGISTERED_NAME = "{{ cookiecutter.project }}"
CANDIDATE, CHAMPION = "candidate", "champion"
PREFIX = "models:/"
# What a client of the model relies on: a version that changes these is not a drop-in replacement.
INTERFACE = ("classes", "resolution", "resize")


def is_registry_uri(model: str | Path) -> bool:
    return str(model).startswith(PREFIX)


def _client():
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(tracker, model_dir: Path) -> dict[str, object]:
    """The exported model folder logged to the run and registered as a new version, alias ``candidate``."""
    from mlflow.exceptions import MlflowException

    tracker.artifacts(model_dir, "model")
    client = tracker.client
    try:
        client.get_registered_model(REGISTERED_NAME)
    except MlflowException:
        client.create_registered_model(REGISTERED_NAME, description="Image classifier exported by the pipeline.")
    source = f"{client.get_run(tracker.run_id).info.artifact_uri}/model"
    version = client.create_model_version(REGISTERED_NAME, source, run_id=tracker.run_id)
    client.set_registered_model_alias(REGISTERED_NAME, CANDIDATE, version.version)
    return {"name": REGISTERED_NAME, "version": int(version.version), "alias": CANDIDATE}


def _version(client, name: str, reference: str):
    from mlflow.exceptions import MlflowException

    try:
        if reference.isdigit():
            return client.get_model_version(name, reference)
        return client.get_model_version_by_alias(name, reference)
    except MlflowException:
        raise ValueError(
            f"No version {reference!r} of model {name!r} in the registry at {tracking_uri()}: run the pipeline "
            "(it registers the chosen model as 'candidate'), or check the name, version or alias."
        ) from None


def parse(model: str) -> tuple[str, str]:
    """``models:/name@alias`` or ``models:/name/version`` as (name, alias or version)."""
    match = re.fullmatch(r"models:/([^/@]+)(?:@([\w-]+)|/(\d+))", model)
    if not match:
        raise ValueError(f"{model!r} is not a registry URI: write models:/<name>@<alias> or models:/<name>/<version>.")
    return match.group(1), match.group(2) or match.group(3)


def fetch(model: str, dest: Path | None = None) -> tuple[Path, dict[str, object]]:
    """A registry URI downloaded to a local model folder, with what it is (name, version, aliases)."""
    import mlflow

    client = _client()
    name, reference = parse(model)
    version = _version(client, name, reference)
    dest = dest or Path(tempfile.mkdtemp(prefix="registered-model-"))
    folder = mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dest))
    info = {"name": name, "version": int(version.version), "aliases": sorted(version.aliases), "uri": model}
    return Path(folder), info


def resolve_model(model: str | Path) -> tuple[Path, dict[str, object]]:
    """What ``score`` and ``serve`` take as ``--model``, as a local folder: a registry URI is downloaded and comes
    with what it is (name, version, aliases, uri); a folder is itself, with an empty dict."""
    if is_registry_uri(model):
        return fetch(str(model))
    return Path(model), {}


def promote(version: int, force: bool = False, name: str = REGISTERED_NAME) -> str:
    """Move ``champion`` to ``version``; refused when its classes or input differ from the current champion's."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = _client()
    target = _version(client, name, str(version))
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is not None and not force:
        new, old = (
            json.loads(Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{v.source}/model.json")).read_text())
            for v in (target, champion)
        )
        differs = [key for key in INTERFACE if new.get(key) != old.get(key)]
        if differs:
            raise ValueError(
                f"Version {version} differs from the champion (version {champion.version}) in "
                f"{', '.join(differs)}: what calls the champion would break. Pass --force to promote it anyway."
            )
    client.set_registered_model_alias(name, CHAMPION, target.version)
    return f"models:/{name}@{CHAMPION} -> version {target.version}"
