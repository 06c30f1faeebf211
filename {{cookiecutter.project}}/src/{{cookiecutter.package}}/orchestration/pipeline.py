"""Run the notebooks in TDSP order with papermill, each only when it is not up to date; the run folder carries
all hand-offs.

A stage (one notebook) runs when its key (``core.stage_records``: code cells, parameters, the content of what it
reads, the package modules it imports, library versions) differs from the one recorded when it last completed,
when its outputs were changed or deleted since, or when it never completed (a killed run goes on at the first
stage that did not). A stage whose new outputs equal the old leaves the stages after it up to date.
"""

import ast
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..core import stage_records
from ..core.choices import TIMM_PREFIX
from ..core.config import check_configs, unknown_parameters
from ..core.errors import ConfigError
from ..core.formatting import with_interval
from ..core.paths import project_root, resolve, write_atomically
from ..core.profiles import profile_values
from ..core.stages import STAGES, stage
from ..core.tracking import Tracker, check_reachable
from .lock import RunFolderLock
from .staleness import Verdict, judge, parts_now

NOTEBOOKS = tuple(stage.notebook for stage in STAGES)  # the graph's order: core.stages declares it once
HEADLINE = ("test_accuracy", "test_auc", "val_accuracy")


class PipelineError(RuntimeError):
    """A notebook failed; the message names it and its executed copy."""


def notebook_paths(code_dir: Path | None = None) -> list[Path]:
    code_dir = code_dir or project_root() / "code"
    paths = [code_dir / name for name in NOTEBOOKS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Notebooks not found: {', '.join(missing)}. Run from the project folder.")
    return paths


def parse_value(text: str) -> object:
    """'3' -> 3, '0.1' -> 0.1, '[1, 2]' -> [1, 2], 'True' -> True, anything else stays text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def declared_parameters(notebooks: list[Path]) -> dict[Path, set[str]]:
    import papermill

    return {nb: set(papermill.inspect_notebook(str(nb))) for nb in notebooks}


def check_overrides(overrides: dict[str, object]) -> None:
    """Every name given is a parameter of some notebook."""
    known = set().union(*declared_parameters(notebook_paths()).values())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(unknown_parameters(unknown, known))


def default_out(profile: str) -> Path:
    return project_root() / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-{profile}"


class IndentedLines:
    """A text stream that writes each line it is given, indented, to ``target`` (a file object)."""

    def __init__(self, target, indent: str = "      ") -> None:
        self.target, self.indent = target, indent

    def write(self, text: str) -> int:
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines:
            self.target.write(f"{self.indent}{line}\n")
        self.target.flush()
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def checked_values(data_dir: str | None, profile: str, overrides: dict[str, object] | None) -> dict[str, object]:
    """Every parameter the notebooks will receive, each checked by the config that holds it (names, types,
    ranges, choices), before anything runs or is written: a bad value stops the run in seconds, not in the
    fifth notebook."""
    values = {**profile_values(profile), **(overrides or {})}
    if data_dir:
        values["DATA_DIR"] = str(resolve(data_dir))
    check_overrides({**(overrides or {}), "RUN_DIR": "", **({"DATA_DIR": data_dir} if data_dir else {})})
    check_backbones(check_configs(values))
    return values


def check_backbones(configs: list) -> None:
    """A timm backbone held to its own limits, and its weights found, before any work (timm and torch load only
    when one is named: a bundled backbone's checks stay in core)."""
    if any(str(getattr(cfg, "backbone", "")).startswith(TIMM_PREFIX) for cfg in configs):
        from ..modeling.timm_backbones import check_config

        for cfg in configs:
            if hasattr(cfg, "backbone"):
                check_config(cfg)


@dataclass(frozen=True)
class PipelineRequest:
    """What ``pipeline`` was asked: the data, the profile, the run folder, parameters, and stages to run whatever
    their state (``force``: those; ``start``: that one and every one after it)."""

    data_dir: str | None = None
    profile: str = "demo"
    out: str | Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    force: tuple[str, ...] = ()
    start: str = ""

    def forced(self, name: str) -> str:
        """Why the request makes stage ``name`` run, or ""."""
        if name in {stage(n).name for n in self.force}:
            return "--force"
        order = [s.name for s in STAGES]
        if self.start and order.index(name) >= order.index(stage(self.start).name):
            return f"--from {stage(self.start).name}"
        return ""


def run_pipeline(request: PipelineRequest = PipelineRequest(), log=print, progress=sys.stdout) -> dict:
    """Bring every stage up to date in ``out`` (executed notebooks in ``out/notebooks``) and return its
    ``metrics.json``. Each stage says ``up to date`` or why it runs.

    What the notebooks print (image counts, features cached and computed, one line per epoch
    with loss and accuracy, the choices made) streams to ``progress`` as they run; progress
    bars stay in the executed notebooks, so CI logs are not flooded."""
    from ..core.run_folder import RunFolder  # pandas: not needed by the commands that only score or serve

    values = checked_values(request.data_dir, request.profile, request.overrides)
    for name in (*request.force, *([request.start] if request.start else [])):
        stage(name)  # an unknown stage is refused before anything runs
    check_reachable()  # an unreachable tracking server stops the run before any training
    declared = declared_parameters(notebook_paths())
    run = RunFolder.open(request.out or default_out(request.profile))  # only now: a refused run writes nothing
    with RunFolderLock(run):
        write_atomically(run.pipeline_settings, json.dumps({**asdict(request), "out": str(run.root)}, default=str))
        ran, reused = _bring_up_to_date(run, request, {**values, "RUN_DIR": str(run.root)}, declared, log, progress)
        if ran:
            _track(run, ran, reused, log)
    return asdict(run.read_metrics())


def _bring_up_to_date(run, request: PipelineRequest, values: dict, declared: dict, log, progress) -> tuple:
    ran, reused = [], []
    for i, current in enumerate(STAGES, 1):
        verdict = judge(current, run, values, request.forced(current.name))
        label = f"[{i}/{len(STAGES)}] {current.notebook}"
        if not verdict.runs:
            log(f"{label}: up to date", flush=True)
            reused.append(verdict)
            continue
        log(f"{label}: runs ({verdict.why})", flush=True)
        injected = {k: v for k, v in values.items() if k in declared[project_root() / "code" / current.notebook]}
        _run_stage(run, verdict, values, injected, progress)
        log(f"      done in {stage_records.read(run, current.name).seconds:.1f} s", flush=True)
        ran.append(verdict)
    return ran, reused


def _run_stage(run, verdict: Verdict, values: dict, injected: dict, progress) -> None:
    """The stage's notebook executed; its record says 'running' meanwhile, then 'done' (or 'failed')."""
    current = verdict.stage
    stage_records.started(run, current.name)
    began = time.monotonic()
    try:
        execute(project_root() / "code" / current.notebook, run.notebooks / current.notebook, injected, progress)
    except PipelineError as error:
        stage_records.failed(run, current.name, str(error).splitlines()[0], time.monotonic() - began)
        raise
    parts = parts_now(current, run, values)  # after it ran: what it read (a sample it wrote out, say)
    stage_records.done(run, current, parts, time.monotonic() - began, "pipeline")


def _track(run, ran: list[Verdict], reused: list[Verdict], log) -> None:
    """The run's MLflow record says which stages ran (and why) and which were reused, with their keys."""
    tracker = Tracker(run)
    tracker.tags({"stages_ran": ", ".join(v.stage.name for v in ran) or "none"})
    tracker.tags({"stages_reused": ", ".join(v.stage.name for v in reused) or "none"})
    for verdict in ran:
        tracker.tags({f"stage.{verdict.stage.name}": f"ran ({verdict.why})"[:5000]})
    for verdict in reused:
        record = verdict.record
        tracker.tags({f"stage.{verdict.stage.name}": f"reused key {record.key[:12]} of {record.finished}"})
    for folder in (run.notebooks, run.results_file("any").parent, run.stages):
        tracker.artifacts(folder, folder.name)
    tracker.finish()
    log(f"tracked as MLflow run {tracker.run_id} in {tracker.uri}", flush=True)


def execute(notebook: Path, executed: Path, parameters: dict[str, object], progress=sys.stdout) -> None:
    """One notebook run by papermill into ``executed``, what it prints streamed to ``progress``."""
    import papermill

    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            stdout_file=IndentedLines(progress) if progress else None,
            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # keep the kernel's start-up chatter out
        )
    except papermill.PapermillExecutionError as error:
        raise PipelineError(
            f"{notebook.parent.name}/{notebook.name} failed: {error.ename}: {error.evalue}\n"
            f"The executed notebook, with the traceback, is {executed}"
        ) from None


def headline(metrics: dict) -> str:
    """The headline numbers, each with its 95% bootstrap interval where the evaluation drew one."""

    return "  ".join(f"{k}={with_interval(metrics[k], metrics.get(f'{k}_ci'))}" for k in HEADLINE if k in metrics)
