"""Tiny real images made on the fly: two classes of stripes a pretrained network tells apart easily, every awkward
kind of file a real collection holds, and PNGs that declare far more pixels than they hold."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """``image`` as the bytes of a file of ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png(colour: str, size: int = 16) -> bytes:
    """A one-colour RGB PNG."""
    return encoded(Image.new("RGB", (size, size), colour))


def stripes(horizontal: bool, size: int, rng: np.random.Generator) -> Image.Image:
    """Black-and-white stripes, slightly tilted, with a random period and phase, plus noise.

    The tilt and the non-integer period keep any two images far apart in dhash, so only
    the duplicates a test makes on purpose are found."""
    period, tilt = rng.uniform(4, 9), rng.uniform(-0.3, 0.3)
    y, x = np.mgrid[0:size, 0:size]
    across = (y + tilt * x) if horizontal else (x + tilt * y)
    pixels = ((across + rng.uniform(0, period)) / period) % 1 < 0.5
    noisy = pixels * 200.0 + rng.normal(28, 12, (size, size))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")


def smooth_photo(size: int, rng: np.random.Generator) -> Image.Image:
    """A smooth colour image (upsampled random 6 x 6): small edits keep its dhash close."""
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return small.resize((size, size), Image.BICUBIC)


def write_stripes_dataset(root: Path, per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """``root/horizontal`` and ``root/vertical``, PNG and JPEG files mixed."""
    rng = np.random.default_rng(seed)
    for label in ("horizontal", "vertical"):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            stripes(label == "horizontal", size, rng).save(folder / f"{label}_{i:02d}{suffix}")
    return root


def subject_view(horizontal: bool, size: int, subject: dict, view: int, views: int, rng) -> Image.Image:
    """One view of a subject: its stripes (period and tilt) shifted by ``view / views`` of a period, fresh noise."""
    y, x = np.mgrid[0:size, 0:size]
    across = (y + subject["tilt"] * x) if horizontal else (x + subject["tilt"] * y)
    pixels = ((across / subject["period"] + view / views) % 1) < 0.5
    noisy = pixels * 200.0 + rng.normal(28, 12, (size, size))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")


SUBJECT_FILES = "{label}/subject{group}_view{view}.png"


def write_subjects(
    root: Path, subjects: int = 8, views: int = 4, size: int = 32, seed: int = 0, files: str = SUBJECT_FILES
) -> list[dict]:
    """``subjects`` synthetic subjects per class (``horizontal``, ``vertical``; groups ``h00``, ``v00``, ...), each
    seen ``views`` times, each view a file named by ``files``: views of one subject differ by a share of their
    stripes' period, far apart in dhash (no two are near copies). Returns a row per image: path (relative to
    ``root``), label, group."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in ("horizontal", "vertical"):
        for k in range(subjects):
            subject = {"period": rng.uniform(5, 9), "tilt": rng.uniform(-0.3, 0.3)}
            group = f"{label[0]}{k:02d}"
            for v in range(views):
                path = files.format(label=label, group=group, view=v)
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                subject_view(label == "horizontal", size, subject, v, views, rng).save(root / path)
                rows.append({"path": path, "label": label, "group": group})
    return rows


def write_messy_dataset(root: Path, per_class: int = 12, size: int = 48, seed: int = 0) -> dict[str, Path]:
    """Two classes of stripes plus every awkward kind of file; returns the special files by name."""
    rng = np.random.default_rng(seed)
    for label in ("horizontal", "vertical"):
        for i in range(per_class):
            folder = root / label / ("nested/deeper" if i % 4 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            stripes(label == "horizontal", size, rng).save(folder / f"{label}_{i:02d}.jpg", quality=92)
    h, v = root / "horizontal", root / "vertical"
    files = {
        "non_ascii": h / "große Streifen ñ.png",
        "exact_copy": h / "copy of große Streifen.png",
        "near_copy": h / "brighter.jpg",
        "rotated": h / "rotated.jpg",
        "cmyk": v / "cmyk.jpg",
        "sixteen_bit": v / "sixteen_bit.png",
        "rgba": v / "alpha.png",
        "palette": v / "palette.gif",
        "truncated": h / "truncated.jpg",
        "empty": v / "empty.png",
        "not_an_image": v / "not_an_image.jpg",
        "bomb": v / "bomb.png",
        "hidden": v / ".hidden.jpg",
        "text": v / "notes.txt",
    }
    base = smooth_photo(size, rng)
    base.save(files["non_ascii"])
    files["exact_copy"].write_bytes(files["non_ascii"].read_bytes())
    brighter = np.clip(np.asarray(base, dtype=np.int16) + 8, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(files["near_copy"], quality=85)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    stripes(True, size, rng).resize((size * 2, size)).save(files["rotated"], exif=exif.tobytes())
    stripes(False, size, rng).convert("CMYK").save(files["cmyk"])
    gray16 = np.asarray(stripes(False, size, rng).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray16).save(files["sixteen_bit"])
    rgba = stripes(False, size, rng).convert("RGBA")
    rgba.putalpha(200)
    rgba.save(files["rgba"])
    stripes(False, size, rng).convert("P").save(files["palette"])
    good = (h / "horizontal_01.jpg").read_bytes()
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["empty"].write_bytes(b"")
    files["not_an_image"].write_text("<html>404 not found</html>")
    Image.new("1", (10_000, 10_000)).save(files["bomb"])  # 100 million pixels in 12 kB
    files["hidden"].write_bytes(good)
    files["text"].write_text("not an image")
    return files


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """45 bytes: a PNG that declares width x height pixels and holds none (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def big_png(side: int, kind: str = "grey16") -> bytes:
    """A real, valid PNG of side x side (zeros), 16-bit grey or 8-bit RGBA, built row by row so the test stays
    small: a few hundred KB that decode to hundreds of MB."""
    depth, colour, row_bytes = {"grey16": (16, 0, 2 * side), "rgba": (8, 6, 4 * side)}[kind]
    ihdr = struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, 0)
    packer, row = zlib.compressobj(9), b"\x00" * (1 + row_bytes)
    data = b"".join([packer.compress(row) for _ in range(side)] + [packer.flush()])
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
