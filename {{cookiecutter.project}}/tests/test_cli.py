import subprocess
import sys

PACKAGE = "{{ cookiecutter.package }}"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", PACKAGE, *args], capture_output=True, text=True, timeout=300)


def test_unknown_parameter_lists_the_valid_ones(tiny_images, tmp_path):
    result = run_cli("pipeline", "--data-dir", str(tiny_images), "--out", str(tmp_path), "-p", "LERNING_RATE", "1")
    assert result.returncode == 2
    assert "Unknown parameter(s) LERNING_RATE" in result.stderr and "C_GRID" in result.stderr
    assert not (tmp_path / "notebooks").exists()


def test_a_parameter_of_the_wrong_type_stops_the_pipeline_before_any_notebook(tiny_images, tmp_path):
    result = run_cli("pipeline", "--data-dir", str(tiny_images), "--out", str(tmp_path), "-p", "EPOCHS", "abc")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: EPOCHS='abc' must be a whole number."
    assert not (tmp_path / "notebooks").exists()


def test_unknown_profile_is_refused():
    result = run_cli("pipeline", "--profile", "huge")
    assert result.returncode == 2 and "invalid choice: 'huge'" in result.stderr


def test_score_writes_csv(exported_model, tiny_images, tmp_path):
    result = run_cli(
        "score", "--model", str(exported_model), "--input", str(tiny_images), "--output", str(tmp_path / "s.csv")
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 25


def test_score_with_a_missing_model_says_what_to_pass(tmp_path, tiny_images):
    result = run_cli(
        "score", "--model", str(tmp_path), "--input", str(tiny_images), "--output", str(tmp_path / "s.csv")
    )
    assert result.returncode == 1 and "not an exported model folder" in result.stderr
