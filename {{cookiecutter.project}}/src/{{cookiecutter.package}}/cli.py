"""Command line: ``python -m {{ cookiecutter.package }} pipeline | train | score | serve``."""

import argparse
import sys
from pathlib import Path

from .errors import ConfigError
from .pipeline import PROFILES  # torch-free: `score` and `serve` start without loading torch


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
    pipeline.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter, e.g. -p C_GRID '[0.01, 0.1]'",
    )

    train = commands.add_parser(
        "train", help="fine-tune on a run folder's manifest; alone or under torchrun --nproc_per_node=N"
    )
    train.add_argument("--run-dir", required=True, help="run folder whose manifest.csv to train on")
    train.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a 02_fine_tune parameter, e.g. -p EPOCHS 5",
    )

    score = commands.add_parser("score", help="score images with an exported model into a CSV")
    score.add_argument("--model", required=True, type=Path, help="exported model folder (<run>/model)")
    score.add_argument("--input", required=True, type=Path, help="folder of images, or CSV with a 'path' column")
    score.add_argument("--output", required=True, type=Path, help="CSV file to write")

    serve = commands.add_parser("serve", help="start the REST service for an exported model")
    serve.add_argument("--model", required=True, type=Path, help="exported model folder (<run>/model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", default=8000, type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:  # a parameter's value: a usage error, like argparse's
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _pipeline(args: argparse.Namespace) -> int:
    from .pipeline import headline, parse_value, run_pipeline

    overrides = {name: parse_value(value) for name, value in args.parameter}
    metrics = run_pipeline(args.data_dir, args.profile, args.out, overrides)
    print(headline(metrics))
    print(metrics["run_dir"])
    return 0


def _train(args: argparse.Namespace) -> int:
    from . import distributed
    from .config import fine_tune_config
    from .pipeline import parse_value
    from .runs import bundled_sample, read_manifest, run_folder
    from .train import fine_tune

    cfg = fine_tune_config({name: parse_value(value) for name, value in args.parameter})
    run_dir = run_folder(args.run_dir)
    history = fine_tune(read_manifest(run_dir), cfg, run_dir / "models" / "fine_tuned", bundled_sample(run_dir))
    distributed.log(f"best epoch {history.best_epoch}: val_accuracy={history.best_val_accuracy:.4f}")
    distributed.teardown()  # only after success: after an error torchrun stops the other processes
    return 0


def _score(args: argparse.Namespace) -> int:
    from .predict import score

    print(score(args.model, args.input, args.output))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import run

    run(args.model, args.host, args.port)
    return 0


COMMANDS = {"pipeline": _pipeline, "train": _train, "score": _score, "serve": _serve}
