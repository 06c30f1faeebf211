"""``docs/data_report.md`` of a run, written from its manifest and results (TDSP data report)."""

from datetime import datetime
from pathlib import Path

import pandas as pd

from ..core.docs import point_at_newest
from ..core.formatting import markdown_table, relative_link
from ..core.run_folder import RunFolder
from . import groups as subject_groups
from .columns import describe as describe_columns
from .duplicates import CONFLICT, conflicting_groups, conflicting_images
from .splits import split_counts

IMAGE_COLUMNS = ["dup_group", "path", "label", "split", "status"]  # of a conflicting group's images
ERROR_COLUMNS = ["path", "split", "label", "label_probability", "suggested_label", "flagged"]  # of the likely errors


def write_data_report(
    run: RunFolder, acquired, manifest: pd.DataFrame, label_errors: pd.DataFrame | None = None, top: int = 20
) -> Path:
    """Sources (and the columns not read), counts per class and split, groups per class and split, every excluded
    file, conflicting labels, duplicate groups (conflicting ones first), review actions.

    ``acquired`` is 01_acquire_data's ``AcquisitionResults``."""
    excluded = manifest[manifest.status != "ok"]
    grouped = manifest[(manifest.status == "ok") & (manifest.dup_count > 1)]
    groups = grouped.groupby("dup_group").agg(
        images=("path", "size"), labels=("label", lambda s: ", ".join(sorted(set(s)))), split=("split", "first")
    )
    conflicts = conflicting_groups(manifest)
    groups["conflicting labels"] = conflicts["labels"].reindex(groups.index).fillna("")
    groups = groups.sort_values("conflicting labels", key=lambda s: s == "", kind="stable")  # conflicts first
    reviewed = manifest[manifest.review != ""]
    sections = [
        f"# Data report\n\nWritten by `02_explore_and_review` on {datetime.now():%Y-%m-%d %H:%M} from `{run.root}`.",
        f"## Sources\n\n{acquired.source}",
        columns_section(acquired.unused_columns),
        f"{len(manifest)} files found, {int((manifest.status == 'ok').sum())} usable, {len(excluded)} excluded.",
        "## Images per class and split\n\n" + markdown_table(split_counts(manifest), index=True),
        f"![class counts]({relative_link(run.figure('class_counts'), run.data_report)})",
        "## Splits\n\n" + acquired.split_rule,
        groups_section(manifest, acquired.group_rule),
        conflicts_section(manifest, conflicts),
        f"## Excluded files ({len(excluded)})\n\nSource files are never changed; these are only left out.\n\n"
        + markdown_table(excluded[["path", "label", "reason"]]),
        f"## Duplicate groups ({len(groups)})\n\n" + acquired.duplicate_rule + "\n\n" + markdown_table(groups, True),
        f"![duplicate groups]({relative_link(run.figure('duplicate_groups'), run.data_report)})" if len(groups) else "",
        f"## Label review: actions applied ({len(reviewed)})\n\nFrom `{acquired.labels_review}`.\n\n"
        + markdown_table(reviewed[["path", "review"]]),
    ]
    if label_errors is not None:
        sections.append(
            f"## Likely label errors (top {top})\n\nEvery split reviewed: the probability of the given label from "
            "a linear probe that never saw it (out of fold for train and validation; for test, one probe fitted on "
            f"train and validation only); full list in `{run.label_errors.name}`. To act on one, copy its line to "
            "the labels review file with action `relabel` (and `new_label`) or `exclude`, then re-run.\n\n"
            + markdown_table(label_errors.head(top)[[c for c in ERROR_COLUMNS if c in label_errors]])
        )
    path = run.data_report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    point_at_newest(path)
    return path


def conflicts_section(manifest: pd.DataFrame, conflicts: pd.DataFrame) -> str:
    """The duplicate groups whose images carry different labels, and their images: before any other group."""
    settled = int(manifest.reason.str.startswith(CONFLICT).sum())
    text = (
        f"## Conflicting labels ({len(conflicts)})\n\nDuplicate groups whose images carry different labels: one "
        "picture filed under two classes, so one of its labels is wrong (and a copy in the test split would be scored "
        f"wrong whatever the model says). {settled} of their images are excluded, as the duplicate rule below says. "
        "To settle a group yourself, relabel or exclude its wrong copies in the labels review.\n\n"
        + markdown_table(conflicts, True)
    )
    if conflicts.empty:
        return text
    return text + "\n\nTheir images:\n\n" + markdown_table(conflicting_images(manifest)[IMAGE_COLUMNS])


def columns_section(unused: dict[str, str]) -> str:
    """The manifest's columns acquisition did not read, each with a note; nothing when every column was read."""
    if not unused:
        return ""
    lines = "\n".join(f"- {line}" for line in describe_columns(unused))
    return f"## Columns not used ({len(unused)})\n\nThe manifest's columns that no step reads:\n\n{lines}"


def groups_section(manifest: pd.DataFrame, rule: str, top: int = 10) -> str:
    """Where the groups came from; with groups from the data, groups per class and split and the largest ones."""
    text = f"## Groups\n\n{rule}" if rule else ""
    if not subject_groups.given(manifest[manifest.status == "ok"]):
        return text
    return (
        f"{text}\n\nGroups per class and split (a group holding two classes counts once in `all`):\n\n"
        + markdown_table(subject_groups.counts(manifest), index=True)
        + f"\n\nThe {top} largest groups:\n\n"
        + markdown_table(subject_groups.largest(manifest, top), index=True)
    )
