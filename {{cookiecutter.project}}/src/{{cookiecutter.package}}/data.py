"""Images in, a manifest out: one row per file with its label, split and checks.

Source images are only ever read. Files that cannot be used stay in the
manifest with ``status='excluded'`` and a ``reason``.
"""

import hashlib
import random
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MANIFEST_COLUMNS = ["path", "label", "split", "sha256", "width", "height", "status", "reason"]
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """The images given cannot make a dataset; the message says how to fix it."""


def class_folders(data_dir: Path) -> list[Path]:
    """The sub-folders of ``data_dir``, one per class, in a stable order."""
    if not data_dir.is_dir():
        raise DataError(f"Data folder {str(data_dir)!r} does not exist.")
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(
            f"Data folder {str(data_dir)!r} has {len(folders)} class sub-folder(s); "
            "put the images of each class in its own sub-folder (at least two classes)."
        )
    return folders


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` at any depth, hidden files skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def inspect_image(path: Path) -> dict[str, object]:
    """Hash and check one file; never modifies it."""
    data = path.read_bytes()
    row: dict[str, object] = {"sha256": hashlib.sha256(data).hexdigest(), "width": 0, "height": 0}
    if not data:
        return {**row, "status": "excluded", "reason": "empty file"}
    try:
        with Image.open(path) as image:
            image.load()
            row.update(width=image.width, height=image.height)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return {**row, "status": "excluded", "reason": f"unreadable image: {error}"}
    return {**row, "status": "ok", "reason": ""}


def scan_folder(data_dir: Path, max_per_class: int = 0, seed: int = 0) -> pd.DataFrame:
    """Manifest of a folder with one sub-folder per class (split still empty)."""
    rows = []
    for folder in class_folders(data_dir):
        files = image_files(folder)
        if max_per_class:
            files = sorted(random.Random(seed).sample(files, min(max_per_class, len(files))))
        for path in tqdm(files, desc=f"checking {folder.name}", leave=False):
            rows.append({"path": str(path), "label": folder.name, "split": "", **inspect_image(path)})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    if manifest.empty:
        raise DataError(
            f"No images found under {str(data_dir)!r}; supported extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}."
        )
    return manifest


def split_manifest(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int = 0) -> pd.DataFrame:
    """Stratified, seeded train/val/test split of the usable rows."""
    manifest = manifest.copy()
    usable = manifest[manifest.status == "ok"]
    for label, rows in usable.groupby("label", sort=True):
        if len(rows) < len(SPLITS):
            raise DataError(
                f"Class {label!r} has {len(rows)} usable image(s); each class needs at least "
                f"{len(SPLITS)} (one per split). Add images or remove the class folder."
            )
        order = list(rows.sort_values("path").index)
        random.Random(f"{seed}-{label}").shuffle(order)
        n_test = max(1, round(len(order) * test_fraction))
        n_val = max(1, round(len(order) * val_fraction))
        n_val = min(n_val, len(order) - n_test - 1)
        manifest.loc[order[:n_test], "split"] = "test"
        manifest.loc[order[n_test : n_test + n_val], "split"] = "val"
        manifest.loc[order[n_test + n_val :], "split"] = "train"
    return manifest


def open_rgb(path) -> Image.Image:
    """8-bit RGB image with its EXIF orientation applied (``path`` may be a file object)."""
    with Image.open(path) as image:
        return to_rgb(ImageOps.exif_transpose(image))


def load_image(path, resolution: int) -> np.ndarray:
    """RGB uint8 array (resolution, resolution, 3)."""
    return np.asarray(open_rgb(path).resize((resolution, resolution), Image.BILINEAR))


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, RGBA, CMYK and 16-bit images as 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if pixels.max() > 255 else 255.0
        image = Image.fromarray((pixels * (255.0 / peak)).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        return background
    return image.convert("RGB")


def load_batch(paths: list[str], resolution: int) -> np.ndarray:
    """Float32 NCHW batch on the 0-255 scale, the input every model here takes."""
    images = np.stack([load_image(p, resolution) for p in paths])
    return images.transpose(0, 3, 1, 2).astype(np.float32)
