"""Every check a config or a parameter makes runs before the first notebook: a bad value stops ``pipeline``
and every stage command with one line naming it, exit code 2, and nothing written."""

import subprocess
import sys

import pytest

from {{ cookiecutter.package }}.orchestration.cli import main

PACKAGE = "{{ cookiecutter.package }}"

BAD = [
    (("LEARNING_RATE", "-1"), "LEARNING_RATE=-1 must be positive"),
    (("BATCH_SIZE", "0"), "BATCH_SIZE=0 must be at least 1"),
    (("EPOCHS", "abc"), "EPOCHS='abc' must be a whole number"),
    (("NOT_A_PARAMETER", "3"), "Unknown parameter(s) NOT_A_PARAMETER. Valid parameters: "),
    (("WEIGHTS", "w.pt"), "Unknown parameter(s) WEIGHTS (WEIGHTS: did you mean BACKBONE_WEIGHTS or CLASS_WEIGHTS?)."),
    (("VAL_FRACTION", "1.5"), "VAL_FRACTION=1.5 must be a fraction strictly between 0 and 1"),
    (("POOLING", "max"), "Invalid POOLING 'max'. Only auto, average, bilinear"),
    (("TARGET_RECALL", "0.9"), "TARGET_RECALL or TARGET_PRECISION needs TARGET_CLASS"),
    (("CALIBRATION_IMAGES", "0"), "CALIBRATION_IMAGES=0 must be at least 1"),
]


def test_the_command_refuses_a_bad_parameter_with_one_line_and_exit_code_2(tmp_path):
    """The real command, in a process of its own: no traceback, nothing on stdout, no run folder."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", PACKAGE, "pipeline", "--profile", "smoke", "--out", str(out)]
    result = subprocess.run([*command, "-p", "LEARNING_RATE", "-1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == "error: LEARNING_RATE=-1 must be positive, e.g. 0.001.\n" and result.stdout == ""
    assert not out.exists(), "a refused run wrote its run folder"


def run(*args: str, capsys) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize(("parameter", "message"), BAD)
def test_pipeline_refuses_a_bad_parameter_before_anything_runs(tmp_path, capsys, parameter, message):
    out = tmp_path / "run"
    code, error = run("pipeline", "--profile", "smoke", "--out", str(out), "-p", *parameter, capsys=capsys)
    assert code == 2, error
    assert error.count("\n") == 1 and error.startswith(f"error: {message}"), error
    assert not out.exists(), "a refused run wrote its run folder"


@pytest.mark.parametrize(
    ("command", "parameter", "message"),
    [
        ("acquire", ("TEST_FRACTION", "0"), "TEST_FRACTION=0 must be a fraction strictly between 0 and 1"),
        ("review", ("REVIEW_FOLDS", "1"), "REVIEW_FOLDS=1 must be at least 2"),
        ("probe", ("C_GRID", "[0.1, -1]"), "C_GRID=[0.1, -1] must be a non-empty list of positive numbers"),
        ("train", ("LEARNING_RATE", "-1"), "LEARNING_RATE=-1 must be positive"),
        ("evaluate", ("TARGET_PRECISION", "2"), "TARGET_PRECISION=2 must be between 0 and 1"),
        ("export", ("PORT", "70000"), "PORT=70000 must be 0 (any free port) to 65535"),
    ],
)
def test_each_stage_command_refuses_a_bad_parameter_before_its_step(tmp_path, capsys, command, parameter, message):
    run_dir = tmp_path / "run"
    code, error = run(command, "--run-dir", str(run_dir), "-p", *parameter, capsys=capsys)
    assert code == 2, error
    assert error.count("\n") == 1 and error.startswith(f"error: {message}"), error
    assert not run_dir.exists()
