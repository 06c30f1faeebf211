"""Sweeps: the probe or the fine-tuning trained once per combination of settings, compared on validation.

Every trial reuses the run's acquisition (its manifest) and the feature cache, runs in a trial folder of its own
(``<run>/sweeps/<name>/trial-<k>``) as a nested MLflow run of the run, and reports its validation accuracy.
The best trial is chosen on validation only, copied into the run as one more candidate
(``<candidate>_sweep``), and ``choose_and_evaluate`` then scores the test split once. A grid tries every
combination; ``random`` and ``tpe`` (Optuna) draw ``trials`` of them, with the study kept in a database so
several machines can work on one study.
"""

import ast
import itertools
import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

import pandas as pd

from ..core import config, plots
from ..core.errors import ConfigError
from ..core.run_folder import FINE_TUNED, LINEAR_PROBE, RunFolder
from ..core.tracking import Tracker
from ..modeling import steps
from .pipeline import check_backbones

STAGES = {"probe": (config.ProbeConfig, LINEAR_PROBE), "train": (config.FineTuneConfig, FINE_TUNED)}
SEARCHES = ("grid", "random", "tpe")


@dataclass
class SweepResults:
    name: str
    stage: str
    search: str
    trials: list[dict]  # one row per trial: its parameters, validation accuracy, seconds
    best_trial: int
    best_parameters: dict
    best_val_accuracy: float
    candidate: str  # the best trial's model, added to the run's candidates
    table: str
    plot: str


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs: its name (``<run>/sweeps/<name>/``, the Optuna study), the stage swept (auto: the one
    the parameters belong to), trials at once, the search and, for random/tpe, how many trials and where the
    study is kept ("" = a database in the run's sweeps folder)."""

    name: str = "sweep"
    stage: str = "auto"
    parallel: int = 1
    search: str = "grid"
    trials: int = 0  # random/tpe: trials to draw (0: the grid's size)
    storage: str = ""


def parse_values(text: str) -> list[object]:
    """'0.001,0.0003' -> [0.001, 0.0003]; '[0.01,0.1],[1.0]' -> two lists; 'average,bilinear' -> two names."""
    try:
        values = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError):
        values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise ConfigError(f"No values in {text!r}: write them separated by commas, e.g. 0.001,0.0003.")
    return values


def stage_of(grid: dict[str, list], stage: str = "auto") -> str:
    """Which step the grid's parameters belong to: the probe's or the fine-tuning's."""
    held = {name: set(config.parameter_names(cls).values()) for name, (cls, _) in STAGES.items()}
    if stage != "auto":
        if stage not in STAGES:
            raise ConfigError(f"Invalid --stage {stage!r}. Only {', '.join(STAGES)} (or auto) are supported.")
        unknown = sorted(set(grid) - held[stage])
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} are not {stage} parameters: {', '.join(sorted(held[stage]))}.")
        return stage
    fitting = [name for name in STAGES if set(grid) <= held[name]]
    if len(fitting) != 1:
        raise ConfigError(
            f"Parameters {', '.join(grid)} fit {'both stages' if fitting else 'no stage'}: pass --stage probe or train "
            "(one stage per sweep)."
        )
    return fitting[0]


def combinations(grid: dict[str, list]) -> list[dict[str, object]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _run_trial(run_root: str, trial_root: str, stage: str, values: dict[str, object]) -> dict[str, object]:
    """One trial in its own folder (a process of its own): the stage's step with the trial's settings."""
    run, trial = RunFolder.open(run_root), RunFolder.open(trial_root)
    for path in (run.manifest, run.results_file("01_acquire_data"), run.tracking):
        if path.is_file():  # the acquisition is shared; tracking.json makes the trial a nested run of the run
            copy = trial.root / path.relative_to(run.root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
    cls, candidate = STAGES[stage]
    cfg = config.from_parameters(cls, values)
    started = time.monotonic()
    results = steps.train_probe(cfg, trial) if stage == "probe" else steps.train_fine_tuned(cfg, trial)
    return {"val_accuracy": results.val_accuracy, "seconds": round(time.monotonic() - started, 1)}


def _tag_trial(run: RunFolder, trial: RunFolder, name: str, index: int, values: dict) -> None:
    state = json.loads(trial.tracking.read_text())
    tracker = Tracker(run)
    for child in state["children"].values():
        if child not in tracker.state["children"].values():
            tracker.client.update_run(child, name=f"{name}-trial-{index}")
            tracker.tags({"sweep": name, "trial": index, **{f"sweep.{k}": v for k, v in values.items()}}, child)


def sweep(
    run: RunFolder, grid: dict[str, list], options: SweepOptions = SweepOptions(), fixed: dict | None = None
) -> SweepResults:
    """Train every trial, choose the best on validation, add it to the run's candidates."""
    stage, name = stage_of(grid, options.stage), options.name
    if options.search not in SEARCHES:
        raise ConfigError(f"Invalid --search {options.search!r}. Only {', '.join(SEARCHES)} are supported.")
    settings = [{**(fixed or {}), **values} for values in combinations(grid)]
    for values in settings:  # every trial's settings are checked before any trains (a timm backbone's too)
        check_backbones([config.from_parameters(STAGES[stage][0], values)])
    run.read_manifest()  # the acquisition must have run
    folder = run.sweep(name)
    if options.search == "grid":
        rows = _grid(run, folder, stage, settings, options.parallel)
    else:
        rows = _optuna(run, folder, stage, grid, fixed or {}, replace(options, trials=options.trials or len(settings)))
    for index, row in enumerate(rows):
        _tag_trial(run, RunFolder.open(folder / f"trial-{index}"), name, index, row["parameters"])
    table = pd.DataFrame([{"trial": i, **r["parameters"], **r["scores"]} for i, r in enumerate(rows)])
    table.to_csv(folder / "trials.csv", index=False)
    best = int(table.val_accuracy.to_numpy().argmax())  # validation only; ties go to the first trial
    candidate = f"{STAGES[stage][1]}_sweep"
    destination = run.model(candidate)
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(RunFolder(folder / f"trial-{best}").model(STAGES[stage][1]), destination)
    plots.sweep(table, list(grid), folder / "parameters.png")
    results = SweepResults(
        name, stage, options.search, table.to_dict("records"), best, rows[best]["parameters"],
        float(table.val_accuracy[best]), candidate, str(folder / "trials.csv"), str(folder / "parameters.png"),
    )  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(results.__dict__, indent=2, default=str))
    print(table.to_string(index=False))
    print(f"best on validation: trial {best} {rows[best]['parameters']} -> {candidate}")
    steps.choose_and_evaluate(config.EvaluateConfig(), run)  # test, once, over every candidate the run now holds
    return results


def _grid(run: RunFolder, folder, stage: str, settings: list[dict], parallel: int) -> list[dict]:
    jobs = [(str(run.root), str(folder / f"trial-{i}"), stage, values) for i, values in enumerate(settings)]
    if parallel <= 1:
        scores = [_run_trial(*job) for job in jobs]
    else:  # spawn: each trial a fresh interpreter, whatever the parent has loaded
        with ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn")) as pool:
            scores = list(pool.map(_run_trial, *zip(*jobs)))
    return [{"parameters": values, "scores": s} for values, s in zip(settings, scores)]


def swept_parameters(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("trial", "val_accuracy", "seconds")]


def read_sweeps(run: RunFolder) -> dict[str, pd.DataFrame]:
    """Every sweep of the run by name, its trials as a table."""
    found = sorted(run.sweeps.glob("*/trials.csv")) if run.sweeps.is_dir() else []
    return {path.parent.name: pd.read_csv(path) for path in found}


def _optuna(run: RunFolder, folder, stage: str, grid: dict, fixed: dict, options: SweepOptions) -> list[dict]:
    import optuna

    seeded = optuna.samplers.TPESampler if options.search == "tpe" else optuna.samplers.RandomSampler
    storage = options.storage or f"sqlite:///{run.sweeps / 'optuna.db'}"
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=options.name, storage=storage, sampler=seeded(seed=0), direction="maximize", load_if_exists=True
    )
    rows = []

    def objective(trial) -> float:
        values = {**fixed, **{k: trial.suggest_categorical(k, v) for k, v in grid.items()}}
        index = len(rows)
        scores = _run_trial(str(run.root), str(folder / f"trial-{index}"), stage, values)
        rows.append({"parameters": values, "scores": scores})
        return scores["val_accuracy"]

    study.optimize(objective, n_trials=options.trials)
    return rows
