"""The feature cache: keyed by backbone, weights, resolution, resize, pooling and image hash; a re-run computes
nothing."""

from dataclasses import replace

import numpy as np
from helpers.images import stripes

from {{ cookiecutter.package }}.acquisition.checks import sha256_file
from {{ cookiecutter.package }}.modeling.features import FeatureSpec, featurize
from {{ cookiecutter.package }}.modeling.pooling import feature_dim

LITE = FeatureSpec("efficientnet_lite0", 32)


def shards(cache):
    return sorted(cache.rglob("*.npz"))


def test_second_run_computes_nothing_and_new_images_only_themselves(tmp_path, tiny_images):
    paths = sorted(str(p) for p in tiny_images.rglob("*.*g"))[:6]
    hashes = [sha256_file(p) for p in paths]
    cache = tmp_path / "cache"
    plain = featurize(paths, LITE, work_dir=tmp_path)
    first = featurize(paths, LITE, hashes, cache, tmp_path)
    np.testing.assert_allclose(first, plain, atol=1e-5)
    assert len(shards(cache)) == 1

    again = featurize(paths[::-1], LITE, hashes[::-1], cache, tmp_path)
    np.testing.assert_array_equal(again, first[::-1])
    assert len(shards(cache)) == 1, "nothing was computed"

    extra = tmp_path / "extra.png"
    stripes(True, 32, np.random.default_rng(9)).save(extra)
    more = featurize([*paths, str(extra)], LITE, [*hashes, sha256_file(extra)], cache, tmp_path)
    np.testing.assert_array_equal(more[:6], first)
    newest = [s for s in shards(cache) if s.stat().st_mtime_ns == max(x.stat().st_mtime_ns for x in shards(cache))]
    assert len(shards(cache)) == 2 and len(np.load(newest[0])["sha256"]) == 1


def test_other_resolution_or_weights_are_other_cache_entries(tmp_path, tiny_images):
    paths = sorted(str(p) for p in tiny_images.rglob("*.png"))[:2]
    hashes = [sha256_file(p) for p in paths]
    cache = tmp_path / "cache"
    featurize(paths, LITE, hashes, cache, tmp_path)
    featurize(paths, replace(LITE, resolution=48), hashes, cache, tmp_path)
    featurize(paths, replace(LITE, weights="none"), hashes, cache, tmp_path)
    featurize(paths, replace(LITE, batch_size=1), hashes, cache, tmp_path)  # the same features: no new entry
    bilinear = featurize(paths, replace(LITE, pooling="bilinear"), hashes, cache, tmp_path)
    cropped = featurize(paths, replace(LITE, resize="crop"), hashes, cache, tmp_path)
    assert sorted(p.name for p in cache.iterdir()) == [
        "efficientnet_lite0-none-32-stretch",
        "efficientnet_lite0-pretrained-32-crop",
        "efficientnet_lite0-pretrained-32-stretch",
        "efficientnet_lite0-pretrained-32-stretch-bilinear-sqrtm",
        "efficientnet_lite0-pretrained-48-stretch",
    ]
    assert cropped.shape == (2, 1280)
    assert bilinear.shape == (2, feature_dim("efficientnet_lite0", "bilinear"))
