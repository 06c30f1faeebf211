"""The steps of stage 1, one function per notebook section that does work.

``01_acquire_data`` calls ``locate``, ``check_files``, ``apply_label_review``, ``group_and_split`` and
``summarize`` in turn (``acquire`` runs them all, for the command line and tests); ``02_explore_and_review``
calls ``find_label_errors`` and ``review_data``. Each takes its config and the run folder.
"""

import numpy as np
import pandas as pd

from ..core.config import DataConfig, ReviewConfig
from ..core.paths import resolve
from ..core.results import AcquisitionResults, ReviewResults
from ..core.run_folder import RunFolder
from ..core.stage_records import record_step
from ..core.tracking import Tracker, file_digest, parameters
from . import columns, duplicates, groups, review, samples, sources, splits
from .manifest import MANIFEST_COLUMNS, check_rows, limit_per_class, worker_count, write_csv
from .report import write_data_report


def locate(cfg: DataConfig) -> sources.Source:
    """The data source: ``DATA_DIR`` when set, else the bundled sample written out under data/raw once."""
    location = (
        resolve(cfg.data_dir) if cfg.data_dir else samples.materialize(cfg.sample, resolve("data/raw") / cfg.sample)
    )
    return sources.detect(location)


def check_files(cfg: DataConfig, run: RunFolder, source: sources.Source) -> pd.DataFrame:
    """Every file read and checked in parallel, streamed to the run's scan file; returns the scan."""
    rows = sources.rows(source, resolve(cfg.download_dir), group_column=cfg.group_column)
    if cfg.max_per_class:
        root = source.location if source.location.is_dir() else source.location.parent
        rows = limit_per_class(rows, cfg.max_per_class, cfg.seed, root)
    write_csv(check_rows(rows, workers=cfg.workers, max_pixels=cfg.max_pixels), run.scan, MANIFEST_COLUMNS)
    scan = run.read_scan()
    print(
        f"{len(scan)} files checked with {worker_count(cfg.workers)} worker(s), {(scan.status != 'ok').sum()} excluded"
    )
    return scan


def apply_label_review(cfg: DataConfig, scan: pd.DataFrame, source: sources.Source) -> pd.DataFrame:
    """The user's corrections (``LABELS_REVIEW``) applied: relabelled or excluded rows, noted in ``review``."""
    review_file = resolve(cfg.labels_review)
    corrections = review.read_review(review_file)
    print(f"{len(corrections)} correction(s) from {review_file}")
    return review.apply_review(scan, corrections, source.location, str(review_file))


def group_and_split(cfg: DataConfig, run: RunFolder, manifest: pd.DataFrame) -> pd.DataFrame:
    """Duplicate groups found, conflicting labels settled, subjects (``GROUP_COLUMN``, ``GROUP_PATTERN``) joined with
    the duplicates, splits drawn (a group never straddles two), the manifest written. Conflicts are settled before
    the splits, so a group given to both train and test is settled whole."""
    manifest = duplicates.group_duplicates(manifest, cfg.duplicate_distance)
    manifest = duplicates.resolve_conflicts(manifest, cfg.conflicting_labels)
    manifest = groups.join(groups.from_pattern(manifest, cfg.group_pattern))
    manifest = splits.assign_splits(manifest, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if cfg.drop_duplicates:
        manifest = duplicates.drop_duplicates(manifest)
    manifest[MANIFEST_COLUMNS].to_csv(run.manifest, index=False)
    grouped = manifest[manifest.dup_count > 1]
    conflicts = len(duplicates.conflicting_groups(manifest))
    settled = int(manifest.reason.str.startswith(duplicates.CONFLICT).sum())
    print(
        f"{grouped.dup_group.nunique()} duplicate group(s) holding {len(grouped)} images; {conflicts} with "
        f"conflicting labels ({settled} image(s) excluded, CONFLICTING_LABELS={cfg.conflicting_labels})"
    )
    if groups.given(manifest):
        summary = groups.summary(manifest)
        print(
            f"{summary['subjects']} subject(s) joined with their copies into {summary['groups']} group(s), each in one "
            f"split; {summary['cut_groups']} group(s) given to two splits ({summary['cut_images']} image(s) left out)"
        )
    return manifest


def summarize(cfg: DataConfig, run: RunFolder, source: sources.Source, manifest: pd.DataFrame) -> AcquisitionResults:
    usable = manifest[manifest.status == "ok"]
    excluded = manifest[manifest.status != "ok"]
    results = AcquisitionResults(
        source=f"{source.kind} {source.location}",
        sample="" if cfg.data_dir else cfg.sample,
        n_files=len(manifest),
        n_excluded=len(excluded),
        excluded=excluded.reason.str.split(":").str[0].value_counts().to_dict(),
        classes=sorted(usable.label.unique()),
        split_counts=usable.split.value_counts().to_dict(),
        duplicate_groups=int(manifest[manifest.dup_count > 1].dup_group.nunique()),
        n_reviewed=int((manifest.review != "").sum()),
        labels_review=str(resolve(cfg.labels_review)),
        split_rule=splits.describe(manifest, cfg.val_fraction, cfg.test_fraction, cfg.seed),
        duplicate_rule=duplicates.describe(cfg.duplicate_distance, cfg.drop_duplicates, cfg.conflicting_labels),
        conflicting_groups=len(duplicates.conflicting_groups(manifest)),
        groups=groups.summary(manifest),
        group_rule=groups.describe(manifest, columns.group_column_used(source, cfg.group_column), cfg.group_pattern),
        unused_columns=columns.unused_columns(source, cfg.group_column),
    )
    print(results.group_rule)
    for line in columns.describe(results.unused_columns):  # no column is ignored in silence
        print(f"column not used: {line}")
    run.save(results)
    tracker = Tracker(run)
    tracker.params({**parameters(cfg), "data_source": results.source, "manifest_sha256": file_digest(run.manifest)})
    tracker.metrics({"n_files": results.n_files, "n_excluded": results.n_excluded})
    tracker.metrics({f"n_{split}": count for split, count in results.split_counts.items()})
    tracker.artifacts(run.manifest, "data")
    record_step(run, results.STEP, cfg, data=cfg)
    return results


def acquire(cfg: DataConfig, run: RunFolder) -> AcquisitionResults:
    """The whole of 01_acquire_data: source, checks, label review, duplicates and splits, manifest."""
    source = locate(cfg)
    scan = check_files(cfg, run, source)
    manifest = group_and_split(cfg, run, apply_label_review(cfg, scan, source))
    return summarize(cfg, run, source, manifest)


def find_label_errors(cfg: ReviewConfig, run: RunFolder, manifest: pd.DataFrame) -> pd.DataFrame:
    """Every image of every split ranked by how little a probe that never saw its label believes it.

    Train and validation images get out-of-fold probabilities from a cross-validated probe. Test images are
    reviewed too (a wrong test label corrupts the headline figure), each by one probe fitted on all train and
    validation images: no test label reaches a probe, so nothing about the test split shapes the model."""
    from ..modeling.features import featurize_rows  # torch: only when the review runs

    rows = manifest[manifest.split.isin(["train", "val", "test"])].reset_index(drop=True)
    x = featurize_rows(rows, cfg, run.work)
    fit = rows.split.isin(["train", "val"]).to_numpy()
    labels = rows.label.to_numpy()
    fitted, classes = review.out_of_fold_probabilities(
        x[fit], labels[fit], splits.group_key(rows).to_numpy()[fit], folds=cfg.folds
    )
    probabilities = np.zeros((len(rows), len(classes)))
    probabilities[fit] = fitted
    probabilities[~fit] = review.held_out_probabilities(x[fit], labels[fit], x[~fit])[0]
    label_errors = review.likely_label_errors(rows, probabilities, classes, cfg.ranker)
    label_errors.to_csv(run.label_errors, index=False)
    return label_errors


def review_data(cfg: ReviewConfig, run: RunFolder, label_errors: pd.DataFrame | None = None) -> ReviewResults:
    """The data report written from the manifest, the acquisition results and the label errors."""
    everything = run.read_manifest(usable_only=False)
    manifest = everything[everything.status == "ok"]
    report = write_data_report(run, run.load(AcquisitionResults), everything, label_errors, top=cfg.top)
    errors = label_errors if label_errors is not None else pd.DataFrame(columns=["path"])
    results = ReviewResults(
        class_counts=manifest.label.value_counts().to_dict(),
        median_size=[int(manifest.width.median()), int(manifest.height.median())],
        duplicate_groups=int(manifest[manifest.dup_count > 1].dup_group.nunique()),
        n_reviewed_by_probe=len(errors),
        likeliest_label_errors=errors.path.head(cfg.top).tolist(),
        report=str(report),
    )
    run.save(results)
    tracker = Tracker(run)
    tracker.params(parameters(cfg))
    for path, folder in ((run.data_report, "reports"), (run.label_errors, "data"), (run.figures, "figures")):
        tracker.artifacts(path, folder)
    record_step(run, results.STEP, cfg)
    return results


def explore_and_review(cfg: ReviewConfig, run: RunFolder) -> ReviewResults:
    """The work of 02_explore_and_review without its figures: label errors and the data report."""
    manifest = run.read_manifest()
    return review_data(cfg, run, find_label_errors(cfg, run, manifest))
