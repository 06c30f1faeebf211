"""One file in, one row of facts out: content hash, a full decode, size, mode and a
perceptual hash. Nothing is ever written; a file that cannot be used gets a reason.
"""

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.choices import HASH_SIZE, IMAGE_FORMATS, MAX_PIXELS
from ..core.images import size_refusal, to_rgb


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dhash(image: Image.Image, hash_size: int = HASH_SIZE) -> str:
    """Difference hash (the algorithm of ``imagehash.dhash``), as hex: is each pixel
    brighter than its left neighbour on a (hash_size + 1) x hash_size grayscale thumbnail.

    ``reducing_gap`` shrinks by whole factors before the Lanczos filter: about 3x faster,
    within ~1.5 bits of the exact thumbnail's hash."""
    thumbnail = image.convert("L").resize((hash_size + 1, hash_size), Image.LANCZOS, reducing_gap=3.0)
    gray = np.asarray(thumbnail, dtype=np.int16)
    return np.packbits(gray[:, 1:] > gray[:, :-1]).tobytes().hex()


def check_image(path: str | Path, max_pixels: int = MAX_PIXELS, hash_size: int = HASH_SIZE) -> dict:
    """Facts about one file: sha256, dhash, width, height (EXIF orientation applied),
    mode, and ``status`` ('ok' or 'excluded') with a ``reason``."""
    row = {"sha256": "", "dhash": "", "width": 0, "height": 0, "mode": "", "status": "excluded", "reason": ""}
    path = Path(path)
    try:
        row["sha256"] = sha256_file(path)
    except FileNotFoundError:
        return {**row, "reason": "file not found"}
    except OSError as error:
        return {**row, "reason": f"cannot read file: {error.strerror or error}"}
    if path.stat().st_size == 0:
        return {**row, "reason": "empty file (0 bytes)"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as image:  # the formats the service reads, no more
                row["mode"] = image.mode
                too_large = size_refusal(image.width, image.height, max_pixels)
                if too_large:
                    return {
                        **row,
                        "reason": f"too large to decode safely: {too_large}; raise MAX_PIXELS if the file is trusted",
                    }
                image.load()
                oriented = ImageOps.exif_transpose(image)
                row.update(width=oriented.width, height=oriented.height, dhash=dhash(_plain(oriented), hash_size))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return {**row, "reason": f"too large to decode safely: {error}"}
    except UnidentifiedImageError:
        return {**row, "reason": f"not an image: none of the formats {', '.join(IMAGE_FORMATS)} recognised in the file"}
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        return {**row, "reason": f"corrupt or truncated image: {error}"}
    return {**row, "status": "ok"}


def _plain(image: Image.Image) -> Image.Image:
    """Grayscale and RGB as they are; other modes (16-bit, CMYK, alpha) as 8-bit RGB."""
    return image if image.mode in ("L", "RGB") else to_rgb(image)
