"""Whether a stage is up to date, and if not, why: what the pipeline runs and what ``status`` shows."""

from dataclasses import dataclass

from ..core import config, stage_records
from ..core.run_folder import RunFolder
from ..core.stages import Stage


@dataclass(frozen=True)
class Verdict:
    stage: Stage
    state: str  # "up to date", "stale", "never run", "failed", "interrupted"
    reasons: tuple[str, ...]
    parts: dict  # the key's parts now
    record: stage_records.StageRecord | None

    @property
    def runs(self) -> bool:
        return self.state != "up to date"

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def stage_config(current: Stage, values: dict[str, object]) -> object | None:
    """The stage's config from parameter values by name (a profile, ``-p``, DATA_DIR); defaults for the rest."""
    if not current.config:
        return None
    cls = getattr(config, current.config)
    held = set(config.parameter_names(cls).values())
    return config.from_parameters(cls, {name: value for name, value in values.items() if name in held})


def parts_now(current: Stage, run: RunFolder, values: dict[str, object]) -> dict:
    """The stage's key parts with these parameter values, from what is on disk now."""
    cfg = stage_config(current, values)
    data = cfg if isinstance(cfg, config.DataConfig) else None
    return stage_records.key_parts(current, run, stage_records.parameters_of(current, cfg), data)


def judge(current: Stage, run: RunFolder, values: dict[str, object], forced: str = "") -> Verdict:
    """The stage's key now against the one recorded when it last completed, and its outputs against the digests
    recorded then (a file changed or deleted by hand makes it run again)."""
    parts = parts_now(current, run, values)
    record = stage_records.read(run, current.name)
    if record is None:
        return Verdict(current, "never run", ("never run",), parts, None)
    if record.status in ("running", "failed"):
        state = "interrupted" if record.status == "running" else "failed"
        return Verdict(current, state, (f"{state} last time",) + ((forced,) if forced else ()), parts, record)
    reasons = tuple(stage_records.changes(record.parts, parts)) if record.key != stage_records.key_of(parts) else ()
    reasons += _outputs_changed(current, run, record)
    reasons += (forced,) if forced else ()
    return Verdict(current, "stale" if reasons else "up to date", reasons, parts, record)


def _outputs_changed(current: Stage, run: RunFolder, record: stage_records.StageRecord) -> tuple[str, ...]:
    now = stage_records.output_digests(current, run)
    missing = sorted(name for name, path in zip(now, current.writes(run)) if not path.exists())
    changed = sorted(name for name, digest in now.items() if record.outputs.get(name) != digest and name not in missing)
    return tuple(
        f"{what}: {', '.join(names)}" for what, names in (("missing", missing), ("changed since", changed)) if names
    )
