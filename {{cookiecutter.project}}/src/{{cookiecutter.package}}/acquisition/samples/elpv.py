"""ELPV: 2,624 electroluminescence images of solar cells (300x300, grayscale).

Data: Deitsch et al., CC BY-NC-SA 4.0, installed from PyPI as ``elpv-dataset``.
The paper's binary task: a cell is defective when its defect probability is
>= 0.5 (probabilities are 0, 1/3, 2/3 and 1).
"""

import shutil
from pathlib import Path

DEFECT_THRESHOLD = 0.5


def _labels_file() -> Path:
    import elpv_dataset

    return Path(elpv_dataset.__file__).parent / "data" / "labels.csv"


def write(dest: Path) -> None:
    """Copy each cell image into ``dest/functional`` or ``dest/defective``."""
    labels = _labels_file()
    for line in labels.read_text().splitlines():
        if line.strip():
            rel_path, probability, _cell_type = line.split()
            label = "defective" if float(probability) >= DEFECT_THRESHOLD else "functional"
            target = dest / label / Path(rel_path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(labels.parent / rel_path, target)
