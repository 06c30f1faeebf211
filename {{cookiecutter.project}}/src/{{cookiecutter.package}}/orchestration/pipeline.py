"""Run every notebook in TDSP order with papermill; the run folder carries all hand-offs."""

import ast
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from ..core.config import check_configs
from ..core.errors import ConfigError
from ..core.formatting import with_interval
from ..core.paths import project_root, resolve
from ..core.tracking import Tracker, check_reachable

NOTEBOOKS = (
    "01_data_acquisition_and_understanding/01_acquire_data.ipynb",
    "01_data_acquisition_and_understanding/02_explore_and_review.ipynb",
    "02_modeling/01_linear_probe.ipynb",
    "02_modeling/02_fine_tune.ipynb",
    "02_modeling/03_evaluate.ipynb",
    "02_modeling/04_compare_runs.ipynb",
    "03_deployment/01_export.ipynb",
    "03_deployment/02_batch_score.ipynb",
    "03_deployment/03_web_service.ipynb",
)
HEADLINE = ("test_accuracy", "test_auc", "val_accuracy")

# Values the pipeline injects into the notebooks' parameters cells, per profile.
# smoke: seconds, for tests; demo: minutes on a 2-core CPU; full: best accuracy.
PROFILES: dict[str, dict[str, object]] = {
    "smoke": {"MAX_PER_CLASS": 12, "RESOLUTION": 96, "BATCH_SIZE": 16, "FINE_TUNE_RESOLUTION": 64, "EPOCHS": 1},
    "demo": {"MAX_PER_CLASS": 0, "RESOLUTION": 224, "BATCH_SIZE": 32, "FINE_TUNE_RESOLUTION": 160, "EPOCHS": 9},
    "full": {
        "MAX_PER_CLASS": 0,
        "RESOLUTION": 224,
        "BATCH_SIZE": 32,
        "FINE_TUNE_RESOLUTION": 224,
        "EPOCHS": 30,
        "PATIENCE": 8,  # a long one-cycle schedule wanders on validation before it settles
    },
}


def profile_values(name: str) -> dict[str, object]:
    if name not in PROFILES:
        raise ValueError(f"Invalid profile {name!r}. Only {', '.join(PROFILES)} are supported.")
    return dict(PROFILES[name])


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
        raise ConfigError(f"Unknown parameter(s) {', '.join(unknown)}. Valid parameters: {', '.join(sorted(known))}.")


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
    check_configs(values)
    return values


def run_pipeline(
    data_dir: str | None = None,
    profile: str = "demo",
    out: str | Path | None = None,
    overrides: dict[str, object] | None = None,
    log=print,
    progress=sys.stdout,
) -> dict:
    """Execute the notebooks into ``out/notebooks`` and return ``out/metrics.json``.

    What the notebooks print (image counts, features cached and computed, one line per epoch
    with loss and accuracy, the choices made) streams to ``progress`` as they run; progress
    bars stay in the executed notebooks, so CI logs are not flooded."""
    import papermill

    from ..core.run_folder import RunFolder  # pandas: not needed by the commands that only score or serve

    values = checked_values(data_dir, profile, overrides)
    check_reachable()  # an unreachable tracking server stops the run before any training
    notebooks = notebook_paths()
    declared = declared_parameters(notebooks)
    run = RunFolder.open(out or default_out(profile))  # only now: a refused run writes nothing
    values["RUN_DIR"] = str(run.root)
    for i, notebook in enumerate(notebooks, 1):
        stage = notebook.parent.name
        executed = run.notebooks / stage / notebook.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in values.items() if k in declared[notebook]}
        log(f"[{i}/{len(notebooks)}] {stage}/{notebook.name}", flush=True)
        started = time.monotonic()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=params,
                cwd=str(notebook.parent),
                kernel_name="python3",
                progress_bar=False,
                stdout_file=IndentedLines(progress) if progress else None,
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # keep the kernel's start-up chatter out
            )
        except papermill.PapermillExecutionError as error:
            raise PipelineError(
                f"{stage}/{notebook.name} failed: {error.ename}: {error.evalue}\n"
                f"The executed notebook, with the traceback, is {executed}"
            ) from None
        log(f"      done in {time.monotonic() - started:.1f} s", flush=True)
    tracker = Tracker(run)
    for folder in (run.notebooks, run.results_file("any").parent):
        tracker.artifacts(folder, folder.name)
    tracker.finish()
    log(f"tracked as MLflow run {tracker.run_id} in {tracker.uri}", flush=True)
    return json.loads(run.metrics.read_text())


def headline(metrics: dict) -> str:
    """The headline numbers, each with its 95% bootstrap interval where the evaluation drew one."""

    return "  ".join(f"{k}={with_interval(metrics[k], metrics.get(f'{k}_ci'))}" for k in HEADLINE if k in metrics)
