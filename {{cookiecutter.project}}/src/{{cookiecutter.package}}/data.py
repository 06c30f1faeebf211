"""Reading images: which files count as images, and how any of them becomes 8-bit RGB.

Source images are only ever read, never written, moved or deleted.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DataError(ValueError):
    """The images given cannot make a dataset; the message says how to fix it."""


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def walk_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` at any depth, in a stable order, one at a time.

    Hidden files and folders (``.name``) and files without an image extension are skipped.
    """
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        for name in sorted(files):
            if not is_hidden(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(root) / name


def image_files(folder: Path) -> list[Path]:
    return list(walk_images(folder))


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
