"""Every choice a setting can take and every limit it is checked against, in one place.

The configs check against these without loading any stage (no torch, no scikit-learn), and the stages build
what they name from them: ``modeling.backbones`` builds exactly the backbones listed here, ``modeling.pooling``
the poolings, and acquisition, scoring and serving share one image-size limit, so an image accepted for
training is never refused by the project's own service.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneLimits:
    resolution_range: tuple[int, int]  # input sizes, in pixels, the network takes
    n_blocks: int  # blocks fine-tuning can hold fixed (``FREEZE_BLOCKS``)


BACKBONES: dict[str, BackboneLimits] = {
    "efficientnet_lite0": BackboneLimits((32, 1024), 16),
    "efficientnet_lite2": BackboneLimits((32, 1024), 21),
    "alexnet": BackboneLimits((64, 1024), 5),
    **{f"resnet{depth}": BackboneLimits((32, 1024), 4) for depth in (18, 34, 50, 101, 152)},
}
# Any timm model: ``timm:<model>[.<tag>]``. Its own limits (input sizes, patch multiples, blocks) come from timm's
# description of it, checked before any work by ``modeling.timm_backbones`` (core loads no deep-learning library);
# here only the form of the name and the widest limits.
TIMM_PREFIX = "timm:"
TIMM_NAME = r"timm:[a-z0-9_]+(\.[a-z0-9_]+)?"
TIMM_RESOLUTION_RANGE = (32, 1024)
TIMM_MAX_BLOCKS = 64
WEIGHTS = ("pretrained", "none")  # or the path of a weights file
POOLINGS = ("average", "bilinear", "multistage")
POOLING_CHOICES = ("auto", *POOLINGS)  # auto: the probe tries each and keeps the best on validation
CLASSIFIERS = ("logistic_regression", "linear_svm")
FLIPS = ("none", "horizontal", "all")
RESIZES = ("stretch", "crop", "pad")
DEFAULT_RESIZE = "stretch"  # measured: ties crop and beats pad on natural photos; keeps every pixel of content
OPTIMIZERS = ("adamw", "sgd")
# How fine-tuning starts its new last layer: from a linear probe fitted on the frozen network's features at the
# fine-tuning resolution (LP-FT, Kumar et al. 2022: the pretrained features are not torn up by a random head's
# first large gradients), or at random.
HEAD_INITS = ("probe", "random")
# The views averaged at prediction: ``auto`` chooses on validation among those the training flips allow (and keeps
# a single view unless more views score higher there); any other value is applied as it is.
TEST_VIEWS = ("auto", *("none", "horizontal", "all"))
SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
# How the label review ranks images (``acquisition.review.likely_label_errors``): ``probability`` by the given label's
# held-out probability, lowest first; ``cleanlab`` puts the issues cleanlab's confident learning finds first.
REVIEW_RANKERS = ("probability", "cleanlab")
# A duplicate group whose images carry different labels (one picture filed under two classes): ``majority`` keeps
# the images with the group's most common label and excludes the others (a tie excludes the whole group), ``exclude``
# excludes the whole group, ``keep`` keeps every image. The default is majority: one of two contradicting labels is
# wrong, and a copy left in the test split under it is scored wrong whatever the model says.
CONFLICTING_LABELS = ("majority", "exclude", "keep")

# One image-size limit for every image the project reads: acquisition (training data), the batch scorer and
# the service. Sizes are read from the header, before any decoding.
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; 8-bit RGB of it is 120 MB
MAX_SIDE = 20_000
# The only decoders that see any file (Pillow knows many more, some of which start external programs);
# JPEG's covers the multi-picture JPEGs of phones (MPO).
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")
HASH_SIZE = 16  # perceptual hash (dhash) of 16 x 16 = 256 bits


def backbone_limits(backbone: str) -> BackboneLimits | None:
    """A bundled or torchvision backbone's limits; the widest ones for a well-formed timm name; None otherwise."""
    if backbone in BACKBONES:
        return BACKBONES[backbone]
    if re.fullmatch(TIMM_NAME, backbone):
        return BackboneLimits(TIMM_RESOLUTION_RANGE, TIMM_MAX_BLOCKS)
    return None
