"""One size limit for every image the project reads: an image accepted for training is never refused by the
project's own service or scorer, and one the service refuses is not trained on either."""

import io

import pytest
from helpers.images import encoded
from PIL import Image

from {{ cookiecutter.package }}.acquisition.checks import check_image
from {{ cookiecutter.package }}.core.choices import MAX_PIXELS, MAX_SIDE
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.images import ImageRefused, read_checked
from {{ cookiecutter.package }}.deployment.service.settings import ServiceSettings


def blank_png(width: int, height: int) -> bytes:
    return encoded(Image.new("L", (width, height)), "PNG", compress_level=1)


def test_every_stage_starts_from_the_same_limit():
    settings = ServiceSettings()
    assert DataConfig().max_pixels == settings.max_pixels == MAX_PIXELS
    assert settings.max_side == MAX_SIDE


@pytest.mark.parametrize(("width", "height", "accepted"), [(8000, 5000, True), (8001, 5000, False)])
def test_training_and_serving_agree_at_the_limit(tmp_path, width, height, accepted):
    """8000 x 5000 is exactly MAX_PIXELS: both take it; one column more and both refuse it."""
    assert 8000 * 5000 == MAX_PIXELS
    data = blank_png(width, height)
    (tmp_path / "image.png").write_bytes(data)
    row = check_image(tmp_path / "image.png")
    assert (row["status"] == "ok") is accepted, row["reason"]
    if accepted:
        assert read_checked(io.BytesIO(data), 32).shape == (32, 32, 3)
    else:
        assert "over the limit of 40,000,000 pixels" in row["reason"]
        with pytest.raises(ImageRefused, match="over the limit of 40,000,000 pixels"):
            read_checked(io.BytesIO(data), 32)


def test_a_format_the_service_would_not_decode_is_not_trained_on(tmp_path):
    """Pillow reads many formats; acquisition accepts only those the service decodes."""
    Image.new("RGB", (16, 16)).save(tmp_path / "image.png", format="PPM")  # a PPM named .png
    row = check_image(tmp_path / "image.png")
    assert row["status"] == "excluded" and "not an image" in row["reason"]
    with pytest.raises(ImageRefused):
        read_checked(tmp_path / "image.png", 16)
