"""Bundled image collections, written out as a folder with one sub-folder per class.

Each module here exposes ``write(dest: Path) -> None``; the project keeps only the
samples chosen when it was baked.
"""

import importlib
import pkgutil
from pathlib import Path


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def materialize(name: str, dest: Path) -> Path:
    """Write sample ``name`` under ``dest`` once; later calls reuse it."""
    if name not in available():
        raise ValueError(
            f"Unknown sample {name!r}. Available samples: {available() or 'none'}; "
            "or set DATA_DIR to a folder with one sub-folder of images per class."
        )
    done = dest / ".complete"
    if not done.exists():
        dest.mkdir(parents=True, exist_ok=True)
        importlib.import_module(f"{__name__}.{name}").write(dest)
        done.touch()
    return dest
