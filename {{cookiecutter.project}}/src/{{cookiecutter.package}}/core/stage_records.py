"""Each stage's key and its record in the run folder: what decides whether a stage must run again.

A stage's key is the digest of everything that determines its result: its notebook's code cells, the parameter
values it receives, the content of the run files it reads (for acquisition: the images and the label review
file), the source of every package module its notebook imports, directly or not, and the versions of the
libraries that change numbers. A stage that completes records its key with the digests of what it wrote, whether
the pipeline ran its notebook or a person ran it in JupyterLab; a stage is up to date while its key and its
outputs are what the record says.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import fingerprints
from .config import DataConfig, parameter_names
from .paths import project_root, resolve, write_atomically
from .run_folder import RunFolder
from .stages import Stage, stage


@dataclass
class StageRecord:
    stage: str
    status: str  # "done", "running" (it started and never finished: killed), "failed"
    key: str = ""
    parts: dict = field(default_factory=dict)  # what the key was made of, to say what changed
    outputs: dict[str, str] = field(default_factory=dict)  # run file -> digest, as the stage wrote them
    seconds: float = 0.0
    finished: str = ""
    by: str = ""  # "pipeline" or "notebook"
    error: str = ""


def notebook_path(current: Stage) -> Path:
    return project_root() / "code" / current.notebook


def parameters_of(current: Stage, cfg: object | None) -> dict[str, object]:
    """The parameters the stage's notebook declares (RUN_DIR aside), with the values ``cfg`` holds, as JSON."""
    if cfg is None:
        return {}
    by_name = {name: field_name for field_name, name in parameter_names(type(cfg)).items()}
    declared = [n for n in fingerprints.declared_parameters(notebook_path(current)) if n in by_name]
    return json.loads(json.dumps({name: getattr(cfg, by_name[name]) for name in declared}, default=list))


def key_parts(current: Stage, run: RunFolder, parameters: dict, data: DataConfig | None = None) -> dict:
    """Everything the stage's result depends on, each with its digest (folders file by file)."""
    digests = fingerprints.FileDigests(run.digest_cache)
    inputs = {_relative(path, run): digests.tree(path) for path in current.reads(run)}
    if data is not None:
        inputs.update(_data_inputs(data, run, digests))
    digests.save()
    notebook = notebook_path(current)
    return {
        "code": fingerprints.code_cells(notebook),
        "parameters": parameters,
        "inputs": inputs,
        "modules": fingerprints.package_modules(notebook),
        "libraries": fingerprints.library_versions(),
    }


def _data_inputs(data: DataConfig, run: RunFolder, digests: fingerprints.FileDigests) -> dict[str, dict]:
    """Acquisition reads the images (a folder's, or those a CSV lists, and the list itself) and the review file."""
    location = resolve(data.data_dir) if data.data_dir else resolve("data/raw") / data.sample
    images = digests.images(location)
    if location.is_file() and run.scan.is_file():  # a CSV manifest or URL list: also the files it named last time
        listed = [Path(p) for p in run.read_scan().path if p]
        images.update({str(p): digests.file(p) for p in listed})
    return {"data source": images, "label review": digests.tree(resolve(data.labels_review))}


def key_of(parts: dict) -> str:
    summary = {**parts, "inputs": {name: fingerprints.combined(files) for name, files in parts["inputs"].items()}}
    return fingerprints.combined({"": json.dumps(summary, sort_keys=True)})


def output_digests(current: Stage, run: RunFolder) -> dict[str, str]:
    digests = fingerprints.FileDigests(run.digest_cache)
    found = {_relative(path, run): fingerprints.combined(digests.tree(path)) for path in current.writes(run)}
    digests.save()
    return found


def _relative(path: Path, run: RunFolder) -> str:
    return path.relative_to(run.root).as_posix() if path.is_relative_to(run.root) else str(path)


def read(run: RunFolder, name: str) -> StageRecord | None:
    try:
        return StageRecord(**json.loads(run.stage_record(name).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write(run: RunFolder, record: StageRecord) -> None:
    write_atomically(run.stage_record(record.stage), json.dumps(record.__dict__, indent=1, default=str))


def started(run: RunFolder, name: str) -> None:
    """The stage is about to run: its earlier record no longer vouches for its outputs (a kill leaves 'running')."""
    write(run, StageRecord(name, "running", finished=_now()))


def done(run: RunFolder, current: Stage, parts: dict, seconds: float, by: str) -> StageRecord:
    record = StageRecord(current.name, "done", key_of(parts), parts, output_digests(current, run), seconds, _now(), by)
    write(run, record)
    return record


def failed(run: RunFolder, name: str, error: str, seconds: float) -> None:
    write(run, StageRecord(name, "failed", seconds=seconds, finished=_now(), by="pipeline", error=error))


def record_step(run: RunFolder, name: str, cfg: object | None = None, data: DataConfig | None = None) -> None:
    """Called by the step that completes a notebook, however it was run (JupyterLab, papermill, a stage command),
    so ``status`` and the next ``pipeline`` know it is done. Outside a project (no code/ folder) it does nothing."""
    current = stage(name)
    if not notebook_path(current).is_file():
        return
    began = time.monotonic()
    parts = key_parts(current, run, parameters_of(current, cfg), data)
    done(run, current, parts, time.monotonic() - began, "notebook")


def changes(before: dict, now: dict) -> list[str]:
    """What differs between two sets of key parts, in words: 'LEARNING_RATE 0.001 -> 0.003',
    'modeling/train.py changed', 'manifest.csv changed', 'code cells changed', 'numpy 2.2 -> 2.3'."""
    if not before:
        return ["never completed"]
    found = [
        f"{name} {_shown(before['parameters'], name)} -> {_shown(now['parameters'], name)}"
        for name in sorted(set(before["parameters"]) | set(now["parameters"]))
        if before["parameters"].get(name) != now["parameters"].get(name)
    ]
    if before["code"] != now["code"]:
        found.append("its notebook's code cells changed")
    found += _changed_files(before["inputs"], now["inputs"])
    found += [f"{m} changed" for m in _changed(before["modules"], now["modules"])]
    found += [
        f"{lib} {before['libraries'].get(lib)} -> {now['libraries'].get(lib)}"
        for lib in _changed(before["libraries"], now["libraries"])
    ]
    return found


def _shown(values: dict, name: str) -> str:
    if name not in values:
        return "(unset)"
    return repr(values[name]) if isinstance(values[name], str) else str(values[name])


def _changed(before: dict, now: dict) -> list[str]:
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def _changed_files(before: dict, now: dict) -> list[str]:
    said = []
    for name in _changed(before, now):
        old, new = before.get(name, {}), now.get(name, {})
        if set(old) == {""} or set(new) == {""}:
            said.append(f"{name} changed")
            continue
        added = len(set(new) - set(old))
        removed = len(set(old) - set(new))
        edited = sum(1 for f in set(old) & set(new) if old[f] != new[f])
        counts = [f"{n} {what}" for n, what in ((added, "added"), (removed, "removed"), (edited, "changed")) if n]
        said.append(f"{name}: {', '.join(counts)} file(s)")
    return said


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
