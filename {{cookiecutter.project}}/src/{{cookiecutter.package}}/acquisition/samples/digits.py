"""scikit-learn's handwritten digits: 1,797 images of 8x8 pixels, ten classes."""

from pathlib import Path

import numpy as np
from PIL import Image


def write(dest: Path) -> None:
    """Write each digit as a grayscale PNG under ``dest/<digit>/``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, target) in enumerate(zip(digits.images, digits.target)):
        pixels = (image * (255 / 16)).round().astype(np.uint8)
        folder = dest / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(folder / f"digit_{i:04d}.png")
