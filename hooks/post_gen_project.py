"""Drop what the chosen options do not need, then print the next steps."""

import shutil
from pathlib import Path

# Cookiecutter fills these literals in; everything below is plain Python.
PACKAGE = "{{ cookiecutter.package }}"
DATASET = "{{ cookiecutter.dataset }}"
LICENSE = "{{ cookiecutter.license }}"

BUNDLED_SAMPLES = ("elpv", "digits")


def unneeded_files(root: Path) -> list[Path]:
    """Files that only matter for options the user did not choose."""
    samples = root / "src" / PACKAGE / "acquisition" / "samples"
    paths = [samples / f"{name}.py" for name in BUNDLED_SAMPLES if name != DATASET]
    if LICENSE == "Proprietary":
        paths.append(root / "LICENSE")
    return paths


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def next_steps(root: Path) -> str:
    data_hint = (
        "put your images in data/raw/<class>/ (one sub-folder per class)"
        if DATASET == "folder"
        else f"the bundled '{DATASET}' sample is written to data/raw/{DATASET}/ on first run"
    )
    return f"""
Created {root.name}/ ({data_hint}).

Next steps:
  cd {root.name}
  make setup      # virtual environment + the project, editable
  make pipeline   # every notebook in batch, results under runs/
  make lab        # read and run the notebooks in JupyterLab
  make serve      # REST service for the last trained model
  make test       # unit tests and the notebooks on tiny data
"""


if __name__ == "__main__":
    project_root = Path.cwd()
    remove(unneeded_files(project_root))
    print(next_steps(project_root))
