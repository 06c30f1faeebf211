"""Command line: ``python -m {{ cookiecutter.package }} <command>``.

``pipeline`` runs every notebook that is not up to date (``status`` says which are, and why); one command per
stage (``acquire``, ``review``, ``probe``, ``train``, ``evaluate``, ``export``) calls the same step functions
the notebooks call, on a run folder; ``score`` and
``serve`` use an exported model (a folder or a registered version) and never load torch (``merge`` joins the
parts of a sharded ``score``); ``promote`` moves the registry's ``champion`` alias; ``backbones`` lists what
``BACKBONE`` can name.
"""

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core import config
from ..core.errors import ConfigError, DataError, TrackingError
from ..core.profiles import PROFILES


def _acquire(cfg, run):
    from ..acquisition.steps import acquire

    return acquire(cfg, run)


def _review(cfg, run):
    from ..acquisition.steps import explore_and_review  # torch and the featurizer: only when a stage runs

    return explore_and_review(cfg, run)


def _probe(cfg, run):
    from ..modeling.steps import train_probe

    return train_probe(cfg, run)


def _train(cfg, run):
    from ..modeling.steps import train_fine_tuned

    return train_fine_tuned(cfg, run)


def _evaluate(cfg, run):
    from ..modeling.steps import build_ensemble, choose_and_evaluate

    build_ensemble(run)  # 03_evaluate's steps, in its order
    return choose_and_evaluate(cfg, run)


def _export(cfg, run):
    from ..deployment.steps import export_model

    return export_model(cfg, run)


@dataclass(frozen=True)
class StageCommand:
    help: str
    config: type  # checked from ``-p`` values before the step (and torch) is imported
    step: Callable  # (config, run folder) -> results


STAGES = {
    "acquire": StageCommand(
        "01_acquire_data: check, review, de-duplicate and split the images", config.DataConfig, _acquire
    ),
    "review": StageCommand(
        "02_explore_and_review: likely label errors and the data report", config.ReviewConfig, _review
    ),
    "probe": StageCommand("01_linear_probe: pooled features and a linear probe", config.ProbeConfig, _probe),
    "train": StageCommand(
        "02_fine_tune: fine-tune the network; alone or under torchrun --nproc_per_node=N", config.FineTuneConfig, _train
    ),
    "evaluate": StageCommand("03_evaluate: choose on validation, test once", config.EvaluateConfig, _evaluate),
    "export": StageCommand("01_export: the chosen model as ONNX with its model card", config.DeployConfig, _export),
}


def _parameters(command: argparse.ArgumentParser, example: str) -> None:
    command.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=f"set a notebook parameter, e.g. -p {example}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    pipeline = commands.add_parser("pipeline", help="run every notebook in batch (papermill)")
    pipeline.add_argument(
        "--data-dir",
        help="folder of class folders, CSV manifest (path,label) or URL list (url,label); default: bundled sample",
    )
    pipeline.add_argument("--profile", default="demo", choices=list(PROFILES), help="run size (default: demo)")
    pipeline.add_argument("--out", help="run folder (default: runs/<timestamp>-<profile>)")
    _parameters(pipeline, "C_GRID '[0.01, 0.1]'")
    pipeline.add_argument(
        "--force", action="append", default=[], metavar="STAGE", help="run this stage even if up to date (repeatable)"
    )
    pipeline.add_argument("--from", dest="start", default="", metavar="STAGE", help="run this stage and all after it")

    status = commands.add_parser("status", help="each stage of a run folder: up to date, stale (and why), never run")
    status.add_argument("--run-dir", help="run folder (default: the newest under runs/, else runs/lab)")
    status.add_argument("--graph", action="store_true", help="also draw the graph: <run>/stages/graph.png and .mmd")

    for name, command in STAGES.items():
        stage = commands.add_parser(name, help=command.help)
        stage.add_argument("--run-dir", required=True, help="run folder the notebooks share (RUN_DIR)")
        _parameters(stage, "EPOCHS 5" if name == "train" else "SEED 1")

    backbones = commands.add_parser("backbones", help="list what BACKBONE can name (timm models: give a PATTERN)")
    backbones.add_argument("pattern", nargs="?", default="", help="timm weights whose names match, e.g. 'convnext*'")

    _add_score_and_merge(commands)
    _add_serve(commands)
    _add_sweep(commands)
    promote = commands.add_parser("promote", help="move the registry alias 'champion' to a version")
    promote.add_argument("--version", required=True, type=int, help="registered version to promote")
    promote.add_argument("--force", action="store_true", help="even if its classes or input differ from the champion's")
    return parser


def _add_score_and_merge(commands) -> None:
    score = commands.add_parser("score", help="score images with an exported model into a CSV")
    score.add_argument("--model", required=True, help="exported model folder (<run>/model), or models:/<name>@<alias>")
    score.add_argument("--input", required=True, type=Path, help="folder of images, or CSV with a 'path' column")
    score.add_argument("--output", required=True, type=Path, help="CSV file to write (replaced only when complete)")
    score.add_argument("--batch-size", default=32, type=int, help="images per model call (default: 32)")
    score.add_argument("--workers", default=0, type=int, help="threads decoding images (default: one per core)")
    score.add_argument("--resume", action="store_true", help="go on from the rows an interrupted run wrote")
    score.add_argument(
        "--shard",
        help="i/n: score every n-th input from the i-th into <output stem>.shard-i-of-n.csv, then run merge "
        "(default: from RANK/WORLD_SIZE, SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX)",
    )
    score.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="model to run (default: fp32)")
    score.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where (default: cpu)")

    merge = commands.add_parser("merge", help="join the parts of a sharded score into one CSV, in input order")
    merge.add_argument("--output", required=True, type=Path, help="the --output every shard was given")


def _add_serve(commands) -> None:
    serve = commands.add_parser("serve", help="start the REST service for an exported model")
    serve.add_argument("--model", required=True, help="exported model folder (<run>/model), or models:/<name>@<alias>")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", default=8000, type=int)
    _service_options(serve)


def _add_sweep(commands) -> None:
    sweep = commands.add_parser("sweep", help="train the probe or the fine-tuning over a grid, choose on validation")
    sweep.add_argument("--run-dir", required=True, help="run folder whose acquisition (manifest) the trials share")
    sweep.add_argument(
        "-g",
        "--grid",
        nargs=2,
        action="append",
        required=True,
        metavar=("NAME", "VALUES"),
        help="a parameter and its values, e.g. -g LEARNING_RATE 0.001,0.0003 -g FINE_TUNE_RESOLUTION 160,224",
    )
    _parameters(sweep, "EPOCHS 3 (the same in every trial)")
    sweep.add_argument("--stage", default="auto", help="probe or train (auto: the one the parameters belong to)")
    sweep.add_argument("--parallel", type=int, default=1, help="trials at once, each in its own process")
    sweep.add_argument("--search", default="grid", help="grid (every combination), random or tpe (Optuna)")
    sweep.add_argument("--trials", type=int, default=0, help="random/tpe: trials to draw (default: grid size)")
    sweep.add_argument("--storage", default="", help="random/tpe: Optuna study database shared by machines")
    sweep.add_argument("--name", default="sweep", help="sweep name: <run>/sweeps/<name>/, the Optuna study")


def _service_options(serve: argparse.ArgumentParser) -> None:
    """Precision, device, API key and one flag per ServiceSettings limit (defaults from there)."""
    from ..deployment.service.settings import ServiceSettings, setting_names

    serve.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="int8: the quantized model")
    serve.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where the model runs")
    serve.add_argument(
        "--api-key-env",
        default="SERVE_API_KEY",
        help="environment variable holding the API key; when it is set, /predict and /metrics need X-API-Key",
    )
    defaults = ServiceSettings()
    for name in setting_names():
        default = getattr(defaults, name)
        flag = f"--{name.replace('_', '-')}"
        serve.add_argument(flag, type=type(default), default=default, help=f"(default {default})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in STAGES:
            return _stage(args)
        return COMMANDS[args.command](args)
    except ConfigError as error:  # a parameter's value: a usage error, like argparse's
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (DataError, TrackingError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _stage(args: argparse.Namespace) -> int:
    """A stage's config from ``-p`` values (checked before any heavy import), then its step on the run folder."""
    from ..core.run_folder import RunFolder
    from .pipeline import check_backbones, parse_value

    command = STAGES[args.command]
    values = {name: parse_value(value) for name, value in args.parameter}
    cfg = config.from_parameters(command.config, values)
    check_backbones([cfg])
    run = RunFolder.open(args.run_dir)
    if command.step(cfg, run) is not None:
        print(f"{args.command}: done, results in {run.root}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from .pipeline import PipelineRequest, headline, parse_value, run_pipeline

    overrides = {name: parse_value(value) for name, value in args.parameter}
    request = PipelineRequest(args.data_dir, args.profile, args.out, overrides, tuple(args.force), args.start)
    metrics = run_pipeline(request)
    print(headline(metrics))
    print(metrics["run_dir"])
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..core.run_folder import RunFolder
    from .status import draw, newest_run, stage_status, table

    run_dir = args.run_dir or newest_run()
    run = RunFolder(Path(run_dir).resolve())  # not created: only --graph writes (its pictures, under stages/)
    statuses = stage_status(run)
    print(f"{run.root}\n{table(statuses)}")
    if args.graph:
        run.stages.mkdir(parents=True, exist_ok=True)
        for path in draw(run, statuses):
            print(path)
    return 0


def _score(args: argparse.Namespace) -> int:
    from ..deployment.scoring import shards
    from ..deployment.scoring.batch_score import ScoringOptions, score

    shard = args.shard if args.shard is not None else shards.from_environment()  # the command's launcher, if any
    options = ScoringOptions(
        args.batch_size, args.workers, args.resume, shard, args.precision, args.device
    )  # checked here: a bad value is a usage error before the model loads
    try:
        score(args.model, args.input, args.output, options)
    except KeyboardInterrupt:  # the scorer has said where its rows are and how to go on
        return 130
    return 0


def _backbones(args: argparse.Namespace) -> int:
    from ..modeling.backbones import catalogue

    print("\n".join(catalogue(args.pattern)))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ..deployment.scoring.shards import merge

    output, rows = merge(args.output)
    print(f"merged {rows} rows: {output}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ..deployment.service.app import run
    from ..deployment.service.settings import ServiceSettings, setting_names

    settings = {name: getattr(args, name) for name in setting_names()}
    settings = ServiceSettings(**settings, api_key=os.environ.get(args.api_key_env, ""))
    run(args.model, args.host, args.port, settings, args.precision, args.device)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ..core.run_folder import RunFolder
    from .pipeline import parse_value
    from .sweep import SweepOptions, parse_values, sweep

    grid = {name: parse_values(values) for name, values in args.grid}
    fixed = {name: parse_value(value) for name, value in args.parameter}
    run = RunFolder.open(args.run_dir)
    options = SweepOptions(args.name, args.stage, args.parallel, args.search, args.trials, args.storage)
    results = sweep(run, grid, options, fixed)
    print(f"{results.table}\n{results.plot}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from ..deployment.registry import promote

    print(promote(args.version, args.force))
    return 0


COMMANDS = {
    "pipeline": _pipeline,
    "status": _status,
    "score": _score,
    "merge": _merge,
    "backbones": _backbones,
    "serve": _serve,
    "sweep": _sweep,
    "promote": _promote,
}
