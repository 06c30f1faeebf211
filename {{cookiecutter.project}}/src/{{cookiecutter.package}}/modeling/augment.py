"""Image augmentation with imgaug (the maintained ``imaug`` fork, on numpy 2), kept behind this one module.

``FLIPS`` says which mirror images are still valid examples of their class:
``none`` (text, digits), ``horizontal`` (most photos), ``all`` (no natural
orientation: solar cells, textures, microscopy) adds vertical flips and 90-degree turns.
"""

import numpy as np

from ..core.choices import FLIPS


def build_augmenter(flips: str = "horizontal", strength: float = 1.0, seed: int | None = None):
    """Flips, small affine moves, crop, brightness and contrast, slight blur; ``seed`` makes it repeatable."""
    import imgaug
    import imgaug.augmenters as iaa

    if seed is not None:
        imgaug.seed(seed)  # some augmenters draw their own seeds from imgaug's global state when built

    if flips not in FLIPS:
        raise ValueError(f"Invalid FLIPS {flips!r}. Only {', '.join(FLIPS)} are supported.")
    mirror = {"none": [], "horizontal": [iaa.Fliplr(0.5)], "all": [iaa.Fliplr(0.5), iaa.Flipud(0.5), iaa.Rot90((0, 3))]}
    augmenter = iaa.Sequential([*mirror[flips], *(_photometric_and_geometric(iaa, strength) if strength else [])])
    if seed is not None:
        augmenter.seed_(seed)
    return augmenter


def _photometric_and_geometric(iaa, s: float) -> list:
    """Small turns and zooms, a crop, brightness, contrast and blur, each scaled by the strength ``s``; at 0 none
    is built, so strength 0 is flips only, pixel for pixel (an identity resampling would still blur)."""
    return [
        iaa.Sometimes(0.5, iaa.Affine(rotate=(-8 * s, 8 * s), scale=(1 - 0.1 * s, 1 + 0.1 * s), mode="reflect")),
        iaa.Sometimes(0.3, iaa.CropAndPad(percent=(-0.08 * s, 0), keep_size=True)),
        _brightness(iaa, mul=(1 - 0.2 * s, 1 + 0.2 * s), add=(-15 * s, 15 * s)),
        iaa.LinearContrast((1 - 0.2 * s, 1 + 0.2 * s)),
        iaa.Sometimes(0.2, iaa.GaussianBlur(sigma=(0, 0.8 * s))),
    ]


def _brightness(iaa, mul: tuple[float, float], add: tuple[float, float]):
    """Brightness times ``mul`` plus ``add``, in random order, one draw per image for all its channels alike (hue
    kept). imgaug's ``MultiplyAndAddToBrightness`` does this in the brightness channel of a random colour space
    (on grey images the same pixels, within a grey level or, in Lab and Luv, four), but its multiply, for images
    under 224 x 224, goes through a float copy of the image in OpenCV: most of the augmenter's time (see
    bench/train_speed.py), where Pillow's multiply takes a tenth of it."""
    return iaa.Sequential([iaa.pillike.EnhanceBrightness(factor=mul), iaa.Add(add)], random_order=True)


def augment_batch(augmenter, images: np.ndarray) -> np.ndarray:
    """Augment uint8 images (N, H, W, 3); shapes and dtype are kept."""
    return np.ascontiguousarray(augmenter(images=images))
