import hashlib

import numpy as np
import pytest
from PIL import Image

from {{ cookiecutter.package }}.data import DataError, load_image, open_rgb, scan_folder, split_manifest


def digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_images(root, label, count, size=16):
    folder = root / label
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (size, size), (i * 10 % 255, 0, 0)).save(folder / f"{i}.png")
    return folder


def test_scan_finds_nested_images_and_skips_hidden_and_other_files(tmp_path):
    make_images(tmp_path, "a", 3)
    nested = make_images(tmp_path / "b", "deeper", 3)
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    manifest = scan_folder(tmp_path)
    assert sorted(manifest.label.unique()) == ["a", "b"]
    assert len(manifest) == 6
    assert all(str(nested) in p for p in manifest[manifest.label == "b"].path)


def test_bad_files_are_excluded_with_a_reason_and_left_untouched(tmp_path):
    make_images(tmp_path, "a", 3)
    make_images(tmp_path, "b", 3)
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "a" / "text.png").write_text("this is not a PNG")
    good = (tmp_path / "b" / "0.png").read_bytes()
    (tmp_path / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    before = digest(tmp_path)
    manifest = scan_folder(tmp_path).set_index("path")
    reasons = {p.split("/")[-1]: r for p, r in manifest[manifest.status == "excluded"].reason.items()}
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.png"}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["text.png"].startswith("unreadable image")
    assert digest(tmp_path) == before


def test_missing_folder_and_single_class_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    make_images(tmp_path, "only", 3)
    with pytest.raises(DataError, match="1 class sub-folder"):
        scan_folder(tmp_path)


def test_split_is_stratified_seeded_and_complete(tiny_images):
    manifest = scan_folder(tiny_images)
    first = split_manifest(manifest, 0.2, 0.3, seed=1)
    again = split_manifest(manifest, 0.2, 0.3, seed=1)
    other = split_manifest(manifest, 0.2, 0.3, seed=2)
    assert first.split.tolist() == again.split.tolist()
    assert first.split.tolist() != other.split.tolist()
    counts = first.groupby(["label", "split"]).size().unstack()
    assert (counts["test"] == 3).all() and (counts["val"] == 2).all() and (counts["train"] == 5).all()


def test_a_class_too_small_to_split_is_named(tmp_path):
    make_images(tmp_path, "plenty", 6)
    make_images(tmp_path, "rare", 2)
    with pytest.raises(DataError, match="Class 'rare' has 2 usable image"):
        split_manifest(scan_folder(tmp_path), 0.2, 0.2)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_every_mode_loads_as_8_bit_rgb(tmp_path, mode):
    path = tmp_path / ("image.tif" if mode in ("CMYK", "I;16") else "image.png")
    if mode == "I;16":
        Image.fromarray(np.full((10, 12), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (12, 10)).save(path)
    image = load_image(path, 24)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    if mode == "I;16":
        assert 150 < image.mean() < 160  # 40000 / 65535 * 255, not clipped to white


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_rgb(tmp_path / "rotated.jpg").size == (20, 40)
