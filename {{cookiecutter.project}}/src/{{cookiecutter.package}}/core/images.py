"""Reading images: which files count as images, and how any of them becomes 8-bit RGB.

Source images are only ever read, never written, moved or deleted.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .choices import DEFAULT_RESIZE, IMAGE_FORMATS, MAX_PIXELS, MAX_SIDE, RESIZES

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


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


def open_rgb_or_grey(path) -> Image.Image:
    """8-bit RGB, or 8-bit grey for grey images, with the EXIF orientation applied (``path`` may be a file object)."""
    with Image.open(path) as image:
        return to_rgb_or_grey(ImageOps.exif_transpose(image))


PAD_VALUE = (127, 127, 127)  # mid-grey: close to every backbone's normalisation mean, so borders add little signal


def to_square(image: Image.Image, resolution: int, resize: str = DEFAULT_RESIZE) -> Image.Image:
    """``image`` as resolution x resolution pixels.

    ``stretch`` scales each side on its own (the whole image, aspect ratio changed);
    ``crop`` scales the shorter side to ``resolution`` and keeps the centre square (aspect
    kept, the ends of the longer side lost); ``pad`` scales the longer side and fills the rest
    with mid-grey (the whole image, aspect kept). A square image comes out the same either way.
    """
    if resize not in RESIZES:
        raise ValueError(f"Invalid RESIZE {resize!r}. Only {', '.join(RESIZES)} are supported.")
    width, height = image.size
    if resize == "stretch" or width == height:
        return image.resize((resolution, resolution), Image.BILINEAR)
    scale = resolution / (min if resize == "crop" else max)(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    if resize == "crop":
        return image.crop((left, top, left + resolution, top + resolution))
    square = Image.new("RGB", (resolution, resolution), PAD_VALUE)
    square.paste(image, (-left, -top))
    return square


def load_image(path, resolution: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """RGB uint8 array (resolution, resolution, 3), made square as ``resize`` says (see ``to_square``)."""
    return np.asarray(to_square(open_rgb_or_grey(path), resolution, resize).convert("RGB"))


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, RGBA, CMYK and 16-bit images as 8-bit RGB."""
    image = to_rgb_or_grey(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def to_rgb_or_grey(image: Image.Image) -> Image.Image:
    """``to_rgb``, except that grey images stay one 8-bit band: made square first and RGB after, they give the
    same pixels for a third of the work and memory (the service and scorer take images of up to 40 megapixels)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return to_8bit_grey(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # each full-size copy costs its size again
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def to_8bit_grey(image: Image.Image) -> Image.Image:
    """16- or 32-bit grey as 8-bit: scaled from 0-65535 when any value exceeds 255, else kept (negatives as 0).

    x // 257 is exactly x * 255 // 65535, in the 2-byte integers a 16-bit image already has."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint16:  # 32-bit "I": its own range first
        pixels = np.clip(pixels, 0, 65535 if pixels.max() > 255 else 255)
    if pixels.max() > 255:
        pixels = pixels // 257
    return Image.fromarray(pixels.astype(np.uint8), mode="L")


def load_batch(paths: list[str], resolution: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Float32 NCHW batch on the 0-255 scale, the input every model here takes."""
    images = np.stack([load_image(p, resolution, resize) for p in paths])
    return images.transpose(0, 3, 1, 2).astype(np.float32)


Image.init()  # registers every format's plugin, so ``formats=`` can name them


def size_refusal(width: int, height: int, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> str:
    """Why an image of this size is refused, or "" when it is within the limits: the one size rule for training
    data, the batch scorer and the service."""
    if width < 1 or height < 1 or width > max_side or height > max_side or width * height > max_pixels:
        return f"{width}x{height} pixels is over the limit of {max_pixels:,} pixels and {max_side:,} a side"
    return ""


class ImageRefused(ValueError):
    """A file that is not an image this project can read, or one too large to decode safely; says which and why."""


class PixelBudget:
    """At most ``total`` pixels being decoded at once, across threads: however many threads decode, the memory
    decoding takes stays bounded (one image larger than the budget still decodes, alone)."""

    def __init__(self, total: int = MAX_PIXELS):
        self.total, self.free = total, total
        self._changed = threading.Condition()

    @contextmanager
    def take(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            with self._changed:
                self.free += pixels
                self._changed.notify_all()


def read_checked(
    source,
    resolution: int,
    resize: str = DEFAULT_RESIZE,
    max_pixels: int = MAX_PIXELS,
    max_side: int = MAX_SIDE,
    budget: PixelBudget | None = None,
) -> np.ndarray:
    """``load_image`` for untrusted input: only common formats, sizes checked from the header before decoding,
    decoding within ``budget``, and every failure, whatever Pillow raises, an ``ImageRefused`` with a short
    reason (no internals)."""
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            too_large = size_refusal(*image.size, max_pixels, max_side)
            if too_large:
                raise ImageRefused(f"{too_large}; send a smaller image")
            width, height = image.size
            with budget.take(width * height) if budget else nullcontext():
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                return np.asarray(to_square(to_rgb_or_grey(image), resolution, resize).convert("RGB"))
    except ImageRefused:
        raise
    except UnidentifiedImageError:
        raise ImageRefused(
            f"not an image: no image format recognised in the data (accepted: {', '.join(IMAGE_FORMATS)})"
        ) from None
    except Image.DecompressionBombError:
        raise ImageRefused(f"too large to decode safely: over the limit of {max_pixels:,} pixels") from None
    except MemoryError:
        raise ImageRefused("too large to decode in the memory available") from None
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error ... on damaged data
        raise ImageRefused("corrupt or truncated image data") from None
