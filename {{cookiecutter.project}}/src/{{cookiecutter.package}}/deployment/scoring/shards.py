"""One collection scored on many machines: which share of the inputs this process takes, and the merge step.

Shard ``i`` of ``n`` takes inputs ``i, i+n, i+2n, ...`` in the stable input order and writes
``<output stem>.shard-<i>-of-<n>.csv``; ``merge`` interleaves the ``n`` parts back into input order, once their
records (see ``provenance``) show one model, precision and input scored them all. On the command line the share
comes from ``--shard i/n``, else from the launcher's environment: torchrun (``RANK``/``WORLD_SIZE``), a Slurm job
array (``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``) or a Kubernetes indexed job (``JOB_COMPLETION_INDEX``,
with ``WORLD_SIZE`` set to the job's completions in its pod template). ``batch_score.score`` called from a program
never reads the environment: a pipeline step run under such a launcher scores everything.
"""

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ConfigError, DataError
from . import provenance

PARTIAL = ".partial"  # suffix of a file still being written; renamed onto its name only once complete
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}  # as batch_score writes: a path's bytes as they are


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def takes(self, position: int) -> bool:
        return position % self.count == self.index

    def size(self, total: int) -> int:
        return len(range(self.index, total, self.count))

    def part(self, output: Path) -> Path:
        return output.with_name(f"{output.stem}.shard-{self.index}-of-{self.count}.csv")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _checked(index: int, count: int, given: str, fix: str) -> Shard:
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"{given}: the index must be from 0 to the count minus 1; {fix}")
    return Shard(index, count)


def parse(text: str) -> Shard:
    """``i/n`` as a Shard; a clear error for anything else."""
    fix = "write --shard i/n with 0 <= i < n, e.g. --shard 0/4 ... --shard 3/4."
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"--shard {text!r} is not i/n; {fix}")
    return _checked(int(match[1]), int(match[2]), f"--shard {text}", fix)


# (index variable, count variable, offset variable) for each launcher, in the order they are looked for
LAUNCHERS = (
    ("RANK", "WORLD_SIZE", None),  # torchrun
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),  # sbatch --array=0-9
    ("JOB_COMPLETION_INDEX", "WORLD_SIZE", None),  # Kubernetes indexed job
)


def from_environment(env: dict[str, str] | None = None) -> Shard | None:
    """The shard a launcher asked for through the environment, or None (one process scores everything)."""
    env = os.environ if env is None else env
    for index_name, count_name, offset_name in LAUNCHERS:
        if index_name not in env:
            continue
        values = {name: env.get(name, "") for name in (index_name, count_name, offset_name or index_name)}
        given = ", ".join(f"{name}={value!r}" for name, value in values.items())
        fix = f"set {count_name} to the number of processes, or pass --shard i/n to choose explicitly."
        if not all(value.strip().isdigit() for value in values.values()):
            raise ConfigError(f"{given}: these must be whole numbers; {fix}")
        offset = int(values[offset_name]) if offset_name else 0  # Slurm array ids may start anywhere
        shard = _checked(int(values[index_name]) - offset, int(values[count_name]), given, fix)
        return shard if shard.count > 1 else None
    return None


def _parts(output: Path) -> dict[int, dict[int, Path]]:
    """Shard parts beside ``output``, finished or not: {count: {index: path}}."""
    pattern = re.compile(re.escape(output.stem) + r"\.shard-(\d+)-of-(\d+)\.csv(" + re.escape(PARTIAL) + ")?")
    found: dict[int, dict[int, Path]] = {}
    for path in output.parent.glob(f"{output.stem}.shard-*-of-*"):
        match = pattern.fullmatch(path.name)
        if match and not match[3]:
            found.setdefault(int(match[2]), {})[int(match[1])] = path
        elif match:
            found.setdefault(int(match[2]), {})
    return found


def _complete_parts(output: Path) -> list[Path]:
    """The parts of one sharded run, in shard order; a clear error when one is missing or unfinished."""
    found = _parts(output)
    if not found:
        raise DataError(
            f"No shard parts beside {str(output)!r} ({output.stem}.shard-<i>-of-<n>.csv): "
            "run score with --shard i/n (or under torchrun, a Slurm array or an indexed job) first."
        )
    if len(found) > 1:
        raise DataError(
            f"Parts of different shard counts ({', '.join(map(str, sorted(found)))}) lie beside {str(output)!r}: "
            "delete the parts of the run you do not want and merge again."
        )
    count, parts = next(iter(found.items()))
    for index in range(count):
        if index not in parts:
            part = Shard(index, count).part(output)
            state = "unfinished" if partial_path(part).exists() else "missing"
            raise DataError(
                f"Shard {index}/{count} is {state} ({part.name} does not exist): run score --shard {index}/{count}"
                f"{' --resume' if state == 'unfinished' else ''} with the same --input and --output, then merge again."
            )
    return [parts[index] for index in range(count)]


def merge(output: Path) -> tuple[Path, int]:
    """Join the shard parts of ``output`` into ``output``, in input order; returns it and its number of rows."""
    parts = _complete_parts(output)
    provenance.check_parts(parts, [str(Shard(index, len(parts))) for index in range(len(parts))])
    partial = partial_path(output)
    files = [part.open(newline="", **ENCODING) for part in parts]
    try:
        readers = [csv.reader(f) for f in files]
        headers = [next(reader, None) for reader in readers]
        if headers[0] is None or any(h != headers[0] for h in headers):
            raise DataError(f"The parts of {output.name} have different columns: they come from different models.")
        written = _write(partial, headers[0], _interleaved(readers, parts))
    except BaseException:
        partial.unlink(missing_ok=True)  # ours; the output and the parts are untouched
        raise
    finally:
        for f in files:
            f.close()
    os.replace(partial, output)
    for part in parts:
        provenance.remove(part)  # merged; the parts themselves stay until the user deletes them
    return output, written


def _write(path: Path, header: list[str], rows) -> int:
    written = 0
    with path.open("w", newline="", **ENCODING) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            written += 1
        f.flush()
        os.fsync(f.fileno())
    return written


def _interleaved(readers: list, parts: list[Path]):
    """Row k of part i is input k*n + i: one row of each part in turn. When a part runs out, the parts after it
    must have run out in the same turn and those before it in the next: else they split different inputs."""
    while True:
        for reader in readers:
            row = next(reader, None)
            if row is None:
                if all(next(other, None) is None for other in readers):
                    return
                raise DataError(
                    f"The row counts of {', '.join(p.name for p in parts)} do not fit one input split "
                    f"{len(parts)} ways: score every shard again with the same --input, then merge."
                )
            yield row
