"""Bad names stop the bake with one clear line and leave nothing behind."""

import subprocess
import sys

import pytest

from .helpers import TEMPLATE


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("package=1bad", "package='1bad' is not a valid Python package name"),
        ("package=my-pkg", "package='my-pkg' is not a valid Python package name"),
        ("package=class", "package='class' clashes with a Python keyword"),
        ("package=json", "package='json' clashes with a Python keyword or standard-library module"),
        ("project=Bad_Project!", "project='Bad_Project!' is not a valid project slug"),
    ],
)
def test_bad_names_fail_with_a_message_and_leave_no_folder(tmp_path, answer, message):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE), answer],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_good_bake_prints_the_next_steps(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "make pipeline" in result.stdout and (tmp_path / "solar-cell-inspection").is_dir()
