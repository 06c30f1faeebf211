"""What wrote a file of scores, recorded beside it, so ``--resume`` and ``merge`` never join two models' rows.

A CSV's header names only the classes: an int8 run resumed after an fp32 one, or shards scored before and after a
registry alias moved, write the same columns. So each ``.partial`` file and each shard part has a record
``<file>.json`` (the sha256 of the ONNX file scored with, its precision and decision, the registered version, the
input and the shard), written before the first row; a resume or a merge whose records differ is refused. A complete
output's record is removed; a part's once it is merged.
"""

import hashlib
import json
import os
from pathlib import Path

from ...core.errors import DataError

SUFFIX = ".json"


def path_of(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe(model_file: Path, precision: str, decision, registered: str | None, source: Path, shard) -> dict:
    """The record of a run: the model file's bytes (not its path: a registered model is fetched to a new folder
    each time), how it decides, which registered version it is, what it scores and which share of it."""
    return {
        "model_sha256": _sha256(model_file),
        "precision": precision,
        "decision": decision,
        "registered": registered,
        "input": str(Path(source).resolve()),
        "shard": str(shard) if shard else None,
    }


def write(path: Path, record: dict) -> None:
    """``record`` beside ``path``, replaced in one step: a kill never leaves half a record."""
    target = path_of(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, target)


def read(path: Path) -> dict | None:
    try:
        return json.loads(path_of(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise DataError(
            f"{path_of(path)} is not a readable record: delete it and {path.name}, then score again."
        ) from None


def remove(path: Path) -> None:
    path_of(path).unlink(missing_ok=True)


def differences(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> str:
    """``name old -> new`` for each field that differs (hashes cut to 12 digits), or an empty string."""

    def shown(name: str, value) -> str:
        return f"{value[:12]}…" if name == "model_sha256" and isinstance(value, str) else repr(value)

    names = [name for name in dict.fromkeys([*old, *new]) if name not in ignore and old.get(name) != new.get(name)]
    return ", ".join(f"{name} {shown(name, old.get(name))} -> {shown(name, new.get(name))}" for name in names)


def check_resume(partial: Path, record: dict) -> None:
    """Refuse to go on from rows that another model, precision, input or shard wrote."""
    old = read(partial)
    if old is None:
        raise DataError(
            f"--resume: {partial} has no record of the run that wrote it ({path_of(partial).name}): "
            "run again without --resume to start over."
        )
    if changed := differences(old, record):
        raise DataError(
            f"--resume: {partial} was written by another run ({changed}): resume with the settings it was "
            "started with, or run again without --resume to start over."
        )


def check_parts(parts: list[Path], shards: list[str]) -> None:
    """Refuse parts scored by different models, precisions or inputs. Parts none of which has a record were
    merged together before (a merge removes them): they are the ones it checked."""
    records = [read(part) for part in parts]
    if all(record is None for record in records):
        return
    for part, record, shard in zip(parts, records, shards):
        if record is None or record.get("shard") != shard:
            raise DataError(
                f"{part.name} has no record of the run that scored it as shard {shard} ({path_of(part).name}): "
                f"score --shard {shard} again with the other shards' --model and --precision, then merge again."
            )
    for part, record in zip(parts[1:], records[1:]):
        if changed := differences(records[0], record, ignore=("shard",)):
            raise DataError(
                f"{parts[0].name} and {part.name} were scored differently ({changed}): score every shard with the "
                "same --model, --precision and --input, then merge again."
            )
