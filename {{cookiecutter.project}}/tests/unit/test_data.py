"""Every kind of file a real collection holds: checked, never changed, loaded consistently."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.images import write_messy_dataset
from PIL import Image

from {{ cookiecutter.package }}.acquisition.checks import check_image
from {{ cookiecutter.package }}.acquisition.manifest import check_rows, limit_per_class
from {{ cookiecutter.package }}.core.images import (
    PAD_VALUE,
    RESIZES,
    load_image,
    open_rgb_or_grey,
    to_square,
    walk_images,
)


def digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    return root, write_messy_dataset(root)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "corrupt or truncated image"),
        ("empty", "empty file (0 bytes)"),
        ("not_an_image", "not an image"),
        ("bomb", "too large to decode safely"),
    ],
)
def test_each_bad_file_is_excluded_with_its_reason(messy, name, reason):
    row = check_image(messy[1][name])
    assert row["status"] == "excluded"
    assert row["reason"].startswith(reason), row["reason"]


def test_the_pixel_limit_is_a_parameter(tmp_path):
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    row = check_image(tmp_path / "big.png", max_pixels=50_000)
    assert row["status"] == "excluded" and "300x200 pixels is over the limit of 50,000 pixels" in row["reason"]
    assert "raise MAX_PIXELS" in row["reason"]
    assert check_image(tmp_path / "big.png", max_pixels=60_000)["status"] == "ok"


def test_a_missing_file_is_excluded_not_fatal(tmp_path):
    assert check_image(tmp_path / "gone.png")["reason"] == "file not found"


@pytest.mark.parametrize(
    ("name", "mode"),
    [("cmyk", "CMYK"), ("sixteen_bit", "I;16"), ("rgba", "RGBA"), ("palette", "P"), ("non_ascii", "RGB")],
)
def test_awkward_but_valid_images_are_usable(messy, name, mode):
    row = check_image(messy[1][name])
    assert row["status"] == "ok" and row["mode"] == mode and len(row["dhash"]) == 64
    image = load_image(messy[1][name], 24)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8


def test_size_is_measured_after_exif_rotation(messy):
    row = check_image(messy[1]["rotated"])
    assert (row["width"], row["height"]) == (48, 96)
    assert open_rgb_or_grey(messy[1]["rotated"]).size == (48, 96)


def test_hidden_and_non_image_files_are_skipped(messy):
    found = set(walk_images(messy[0]))
    assert messy[1]["hidden"] not in found and messy[1]["text"] not in found
    assert messy[1]["not_an_image"] in found  # an image extension: checked, then excluded
    assert any("nested/deeper" in str(p) for p in found)


def test_parallel_checking_matches_serial_and_changes_no_file(messy):
    root, _ = messy
    before = digest(root)
    rows = [{"path": str(p), "label": p.parent.name} for p in walk_images(root)]
    serial = pd.DataFrame(list(check_rows(rows, workers=1)))
    parallel = pd.DataFrame(list(check_rows(iter(rows), workers=2)))
    pd.testing.assert_frame_equal(serial, parallel)
    assert (serial.status == "excluded").sum() == 4
    assert digest(root) == before


def test_limit_per_class_is_seeded_and_the_same_wherever_the_data_folder_lies(tmp_path):
    def rows_under(root):
        return [{"path": f"{root}/{label}/{i}.png", "label": label} for label in "ab" for i in range(10)]

    def names(rows, root):
        return [str(Path(r["path"]).relative_to(root)) for r in rows]

    here, there = tmp_path / "data", tmp_path / "moved" / "elsewhere"
    first = limit_per_class(rows_under(here), 3, seed=0, root=here)
    assert first == limit_per_class(rows_under(here), 3, seed=0, root=here)
    moved = limit_per_class(rows_under(there), 3, seed=0, root=there)
    assert names(first, here) == names(moved, there), "the same sample once the folder moved"
    assert names(first, here) != names(limit_per_class(rows_under(here), 3, seed=1, root=here), here)
    assert pd.Series([r["label"] for r in first]).value_counts().to_dict() == {"a": 3, "b": 3}


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


def wide_image() -> Image.Image:
    """200 x 100: a red left quarter, a green middle half, a blue right quarter."""
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :50, 0] = pixels[:, 50:150, 1] = pixels[:, 150:, 2] = 255
    return Image.fromarray(pixels)


def test_a_square_image_comes_out_the_same_whatever_the_resize_mode():
    square = wide_image().crop((25, 0, 125, 100))
    made = [np.asarray(to_square(square, 50, mode)) for mode in RESIZES]
    assert all(np.array_equal(made[0], other) for other in made[1:])


def test_stretch_keeps_everything_crop_the_centre_pad_everything_with_grey_borders():
    stretched, cropped, padded = (np.asarray(to_square(wide_image(), 40, mode)) for mode in RESIZES)
    assert stretched.shape == cropped.shape == padded.shape == (40, 40, 3)
    assert stretched[:, 0, 0].min() > 200 and stretched[:, -1, 2].min() > 200  # both ends kept, squeezed
    assert (cropped[..., 1] > 200).all(), "the centre square of the wide image is all green"
    assert (padded[0] == PAD_VALUE).all() and (padded[-1] == PAD_VALUE).all()  # grey above and below
    assert padded[20, 0, 0] > 200 and padded[20, -1, 2] > 200 and padded[20, 20, 1] > 200  # whole width kept


def test_an_unknown_resize_mode_names_the_choices():
    with pytest.raises(ValueError, match="Invalid RESIZE 'fit'. Only stretch, crop, pad"):
        to_square(wide_image(), 32, "fit")


def test_untrusted_reading_gives_the_training_pixels_for_every_kind_of_image(tmp_path):
    """The service and scorer (read_checked) must feed the model exactly what training saw (load_image), for
    grey images squared before RGB too; known answer: a grey image squared, then made RGB, equals RGB squared."""
    from {{ cookiecutter.package }}.core.images import read_checked, to_rgb

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (70, 110), dtype=np.uint8)
    images = {
        "grey.png": Image.fromarray(grey, "L"),
        "rgb.jpg": Image.fromarray(rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (50, 80, 4), dtype=np.uint8), "RGBA"),
        "grey16.png": Image.fromarray(rng.integers(0, 65536, (64, 48), dtype=np.uint16)),
        "palette.gif": Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("P"),
    }
    for name, image in images.items():
        image.save(tmp_path / name)
    for resize in RESIZES:
        for name in images:
            with (tmp_path / name).open("rb") as f:
                untrusted = read_checked(f, 32, resize)
            assert np.array_equal(untrusted, load_image(tmp_path / name, 32, resize)), (name, resize)
        rgb_first = np.asarray(to_square(to_rgb(Image.fromarray(grey, "L")), 32, resize))
        assert np.array_equal(load_image(tmp_path / "grey.png", 32, resize), rgb_first), resize
