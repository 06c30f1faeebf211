"""Deciding about doubtful labels, one image at a time: keep it, relabel it or exclude it.

``LabelReview`` holds what a person reviews (duplicate groups whose copies carry different labels first, then the
likeliest label errors) and writes each decision to the labels review file (``LABELS_REVIEW``, the file
``01_acquire_data`` applies on its next run): one line per image, created, updated or removed, never the image
itself. Every decision can be undone. The notebook's widget (``review_widget``) is a view of this class; the
same decisions can be written into the CSV by hand.
"""

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.paths import write_atomically
from ..core.results import AcquisitionResults
from ..core.run_folder import RunFolder
from . import duplicates
from .review import REVIEW_COLUMNS, read_review

CONFLICT = "its duplicates carry other labels"
DOUBT = "the probe doubts its label"


@dataclass(frozen=True)
class Candidate:
    path: str  # as in the manifest
    name: str  # as written to the review file: relative to the data source where possible
    label: str
    split: str
    reason: str
    suggestion: str
    probabilities: dict[str, float] = field(default_factory=dict)  # class -> probability; empty when not measured


@dataclass
class LabelReview:
    candidates: list[Candidate]
    classes: list[str]
    review_file: Path
    undo_stack: list[tuple[str, dict | None]] = field(default_factory=list)  # (name, its earlier line or None)

    @classmethod
    def from_run(cls, run: RunFolder, label_errors: pd.DataFrame) -> "LabelReview":
        """Conflicting duplicates first, then the label errors in their order; each image once."""
        manifest = run.read_manifest(usable_only=False)
        acquired = run.load(AcquisitionResults)
        names = dict(zip(manifest.path, manifest.origin.where(manifest.origin != "", manifest.path)))
        classes = sorted(manifest[manifest.status == "ok"].label.unique())
        found = {c.path: c for c in _conflicts(manifest, names)}
        for row in label_errors.to_dict("records"):
            found.setdefault(row["path"], _doubt(row, names, classes))
        return cls(list(found.values()), classes, Path(acquired.labels_review))

    def lines(self) -> pd.DataFrame:
        """The review file as it stands: what the next run of 01_acquire_data applies."""
        return read_review(self.review_file)[REVIEW_COLUMNS]

    def decision(self, candidate: Candidate) -> str:
        """'relabel <class>', 'exclude', or '' (kept as it is)."""
        line = self._line(candidate.name)
        if line is None:
            return ""
        return f"relabel {line['new_label']}" if line["action"] == "relabel" else "exclude"

    def keep(self, candidate: Candidate) -> None:
        self._set(candidate.name, None)

    def relabel(self, candidate: Candidate, new_label: str, note: str = "") -> None:
        if new_label not in self.classes:
            raise ValueError(f"{new_label!r} is not a class; the classes are {', '.join(self.classes)}.")
        if new_label == candidate.label:
            return self.keep(candidate)
        self._set(candidate.name, {"path": candidate.name, "action": "relabel", "new_label": new_label, "note": note})

    def exclude(self, candidate: Candidate, note: str = "") -> None:
        self._set(candidate.name, {"path": candidate.name, "action": "exclude", "new_label": "", "note": note})

    def undo(self) -> str | None:
        """Take back the last decision; returns the image it was about (None when there is nothing to undo)."""
        if not self.undo_stack:
            return None
        name, earlier = self.undo_stack.pop()
        self._write(name, earlier)
        return name

    def _line(self, name: str) -> dict | None:
        lines = self.lines()
        match = lines[lines.path == name]
        return match.iloc[-1].to_dict() if len(match) else None

    def _set(self, name: str, line: dict | None) -> None:
        self.undo_stack.append((name, self._line(name)))
        self._write(name, line)

    def _write(self, name: str, line: dict | None) -> None:
        """The file with ``name``'s line replaced (or removed, or added at the end); other lines as they were."""
        rows = [r for r in self.lines().to_dict("records") if r["path"] != name] + ([line] if line else [])
        write_atomically(self.review_file, _csv(rows))


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _conflicts(manifest: pd.DataFrame, names: dict[str, str]) -> list[Candidate]:
    """Every image of a duplicate group whose copies carry more than one label, group by group (excluded ones
    too: the policy settled them for this run; a person settles them for good)."""
    found = []
    for group, rows in duplicates.conflicting_images(manifest).groupby("dup_group", sort=False):
        labels = rows.label.value_counts()
        others = ", ".join(f"{count} x {label}" for label, count in labels.items())
        for row in rows.itertuples():
            reason = f"{CONFLICT} (group {group}: {others})"
            found.append(Candidate(row.path, names[row.path], row.label, row.split, reason, labels.index[0]))
    return found


def _doubt(row: dict, names: dict[str, str], classes: list[str]) -> Candidate:
    probabilities = {c: float(row[f"p_{c}"]) for c in classes if f"p_{c}" in row}
    if not probabilities:
        probabilities = {row["label"]: float(row["label_probability"])}
        probabilities[row["suggested_label"]] = float(row["suggested_probability"])
    reason = f"{DOUBT}: p({row['label']}) = {float(row['label_probability']):.3f}"
    path, split = row["path"], row.get("split", "")
    return Candidate(path, names.get(path, path), row["label"], split, reason, row["suggested_label"], probabilities)
