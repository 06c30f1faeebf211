"""The augmentations do what their settings promise, on a real photo: a library change that alters them fails
here. Geometry is read from keypoints imgaug moves with the image."""

import numpy as np
import pytest
from imgaug.augmentables.kps import Keypoint, KeypointsOnImage
from skimage import data

from {{ cookiecutter.package }}.modeling.augment import augment_batch, build_augmenter

PHOTO = data.astronaut()[::2, ::2]  # 256 x 256 RGB, ships with scikit-image
DRAWS = 48


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The 8 turns and mirrors of a square image."""
    turns = [np.rot90(image, k) for k in range(4)]
    return turns + [np.fliplr(t) for t in turns]


def matches(image: np.ndarray, candidates: list[np.ndarray]) -> int | None:
    return next((i for i, c in enumerate(candidates) if np.array_equal(image, c)), None)


def test_strength_zero_without_flips_changes_no_pixel():
    out = augment_batch(build_augmenter("none", 0.0, seed=0), np.stack([PHOTO] * 8))
    assert all(np.array_equal(o, PHOTO) for o in out)


def test_horizontal_flips_mirror_the_pixels_and_nothing_else():
    out = augment_batch(build_augmenter("horizontal", 0.0, seed=0), np.stack([PHOTO] * DRAWS))
    found = [matches(o, [PHOTO, np.fliplr(PHOTO)]) for o in out]
    assert None not in found, "an output is neither the photo nor its mirror image"
    assert 0.25 < np.mean(found) < 0.75, "about half the images should be mirrored"


def test_all_flips_give_every_turn_and_mirror():
    out = augment_batch(build_augmenter("all", 0.0, seed=0), np.stack([PHOTO] * DRAWS))
    found = [matches(o, dihedral(PHOTO)) for o in out]
    assert None not in found
    assert len(set(found)) >= 6  # of the 8 in 48 draws


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_turns_and_zooms_stay_within_their_ranges(strength):
    """Four keypoints around the centre: the angle and the length between opposite ones give the turn and the zoom.
    The promise: turns within 8 degrees x strength; zoom from the affine (1 +- 0.1 s) times the crop (up to 8% s
    off each side, resized back)."""
    augmenter = build_augmenter("none", strength, seed=0)
    centre, radius = 128.0, 60.0
    points = [(centre - radius, centre), (centre + radius, centre)]
    points += [(centre, centre - radius), (centre, centre + radius)]
    angles, zooms = [], []
    for _ in range(DRAWS):
        keypoints = KeypointsOnImage([Keypoint(x, y) for x, y in points], shape=PHOTO.shape)
        image, moved = augmenter(image=PHOTO, keypoints=keypoints)
        assert image.shape == PHOTO.shape and image.dtype == np.uint8
        (left, right, top, bottom) = [np.array([k.x, k.y]) for k in moved.keypoints]
        across, down = right - left, bottom - top
        angles.append(np.degrees(np.arctan2(across[1], across[0])))
        zooms += [np.linalg.norm(across) / (2 * radius), np.linalg.norm(down) / (2 * radius)]
    turn, low, high = 8 * strength, 1 - 0.1 * strength, (1 + 0.1 * strength) / (1 - 2 * 0.08 * strength)
    assert max(abs(a) for a in angles) <= turn + 0.5
    assert low - 0.01 <= min(zooms) and max(zooms) <= high + 0.01
    assert max(abs(a) for a in angles) > turn / 2, "the turns never came near their range: rotation is off"
    assert max(abs(z - 1) for z in zooms) > 0.03, "no image was zoomed: scaling is off"


def test_photometric_changes_scale_with_strength():
    """Brightness and contrast move the pixels further at strength 1 than at 0.5; the mean stays near the photo's."""
    batch = np.stack([PHOTO] * 16)

    def change(strength: float) -> float:
        out = augment_batch(build_augmenter("none", strength, seed=0), batch)
        return float(np.abs(out.astype(float) - batch).mean())

    assert 0 < change(0.5) < change(1.0)
    assert abs(augment_batch(build_augmenter("none", 1.0, seed=0), batch).mean() - PHOTO.mean()) < 20
