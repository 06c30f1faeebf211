"""Tiny real images made on the fly: two classes a pretrained network tells apart easily; a real MLflow server."""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from torch import nn

from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.run_folder import RunFolder
from {{ cookiecutter.package }}.deployment.export import write_exported_model
from {{ cookiecutter.package }}.modeling.backbones import get_backbone
from {{ cookiecutter.package }}.modeling.model import ImageClassifier

TINY_RESOLUTION = 32

# Tests track into a store of their own, never the project's mlruns.db; subprocesses inherit it.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='test-mlruns-')}/mlruns.db"


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


def build_manifest(location: Path, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, **kw):
    """01_acquire_data's ``acquire`` step on a folder or CSV source, in a fresh run folder; the whole manifest."""
    run = RunFolder.open(tempfile.mkdtemp(prefix="run-"))
    cfg = DataConfig(
        data_dir=str(location),
        labels_review=str(run.root / "no_labels_review.csv"),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        workers=1,
        **kw,
    )
    acquire(cfg, run)
    return run.read_manifest(usable_only=False)


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stripes_dataset(tmp_path_factory.mktemp("tiny_images"))


@pytest.fixture(scope="session")
def tiny_classifier() -> ImageClassifier:
    """Bundled pretrained backbone at 32 px and a random two-class head."""
    backbone = get_backbone("efficientnet_lite0", resolution=TINY_RESOLUTION)
    return ImageClassifier(backbone, nn.Linear(1280, 2)).eval()


# What export records for the tiny models of these tests: the stripes' classes, 32 px, stretched.
TINY_METADATA = {
    "classes": ["horizontal", "vertical"],
    "resolution": TINY_RESOLUTION,
    "resize": "stretch",
    "backbone": "efficientnet_lite0",
    "classifier": "logistic_regression",
}


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory, tiny_classifier: ImageClassifier) -> Path:
    return write_exported_model(tiny_classifier, tmp_path_factory.mktemp("model"), TINY_METADATA)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store, artifacts served by the server); yields its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{root / 'store.db'}", "--artifacts-destination", str(root / "art")]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=5).ok:
                break
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still starting
            time.sleep(0.5)
        assert server.poll() is None, (root / "server.log").read_text()[-3000:]
    else:
        pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
    yield url
    server.terminate()
    server.wait(timeout=30)
