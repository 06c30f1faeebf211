"""Label review: find likely label errors, and apply the corrections a person made.

Every image whose label feeds a reported figure is reviewed, each by a probe that never saw its label: train and
validation images get out-of-fold probabilities from a cross-validated linear probe on pretrained features (folds
never split a group: a subject with its copies, see ``groups``); test images get theirs from one probe fitted on all
train and validation images, so no test label reaches a probe (nor, through it, any choice of model). Images are
ranked by ``REVIEW_RANKER`` (``core.choices.REVIEW_RANKERS``). Corrections live in a CSV the user edits,
``labels_review.csv``:

    path,action,new_label,note
    defective/cell0042.png,relabel,functional,no crack visible
    functional/cell0107.png,exclude,,two cells in one image

``path`` is as in the manifest, or relative to the data source.
"""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..core import class_names
from ..core.choices import REVIEW_RANKERS
from ..core.errors import DataError
from ..modeling.probe import make_probe

ACTIONS = ("relabel", "exclude")
REVIEW_COLUMNS = ["path", "action", "new_label", "note"]
REVIEW_C = 0.01  # the review probe's regularization, out-of-fold and for the test split alike


def read_review(path: Path) -> pd.DataFrame:
    """The corrections in ``path`` (none when the file does not exist), checked line by line."""
    if not path.is_file():
        return pd.DataFrame(columns=[*REVIEW_COLUMNS, "line"])
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows, lines = [], []  # lines as in the file: blank lines are skipped, not counted away
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    if rows and not {"path", "action"} <= set(rows[0]):
        raise DataError(f"{path} needs the columns {','.join(REVIEW_COLUMNS)}; it has {','.join(rows[0])}.")
    for line, row in zip(lines, rows):
        _check_line(path, line, row)
    frame = pd.DataFrame(rows, columns=REVIEW_COLUMNS).fillna("")
    frame = frame.apply(lambda column: column.str.strip()).assign(action=lambda f: f.action.str.lower())
    return frame.assign(line=lines)


def _check_line(path: Path, line: int, row: dict) -> None:
    action = (row.get("action") or "").strip().lower()
    if action not in ACTIONS:
        raise DataError(f"{path} line {line}: action {action!r} must be one of {', '.join(ACTIONS)}.")
    if action == "relabel":  # the new label is a class name like any other, held to the same rule
        new_label = (row.get("new_label") or "").strip()
        if not new_label:
            raise DataError(f"{path} line {line}: 'relabel' needs the new label in the new_label column.")
        class_names.check(new_label, f"{path} line {line}", "write a plain class name in the new_label column")


def apply_review(
    manifest: pd.DataFrame, review: pd.DataFrame, source_root: Path, review_file: str = ""
) -> pd.DataFrame:
    """Relabel or exclude the rows the review names; the ``review`` column says what was done."""
    manifest = manifest.copy()
    manifest["review"] = ""
    index = {p: i for i, p in manifest.path.items()}
    index.update({o: i for i, o in manifest.origin.items()} if "origin" in manifest else {})
    for row in review.itertuples(index=False):
        i = _find(index, row.path, source_root)
        if i is None:
            raise DataError(
                f"{review_file or 'labels review'} line {row.line}: {row.path!r} is not in the data; "
                "fix the path (as in manifest.csv, or relative to the data folder) or delete the line."
            )
        note = f" ({row.note})" if row.note else ""
        if row.action == "relabel":
            manifest.loc[i, "review"] = f"relabelled {manifest.loc[i, 'label']} -> {row.new_label}{note}"
            manifest.loc[i, "label"] = row.new_label
        else:
            manifest.loc[i, "review"] = f"excluded{note}"
            if manifest.loc[i, "status"] == "ok":
                manifest.loc[i, ["status", "reason"]] = ["excluded", f"excluded in label review{note}"]
    return manifest


def _find(index: dict[str, int], path: str, source_root: Path) -> int | None:
    for candidate in (path, str(source_root / path), str((source_root / path).resolve())):
        if candidate in index:
            return index[candidate]
    return None


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    folds: int = 5,
    c: float = REVIEW_C,
    seed: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """P(class | image) for every image from a probe that never saw it (nor its group: its copies, its subject)."""
    classes = sorted(set(labels))
    y = np.searchsorted(classes, labels)
    probabilities = np.zeros((len(y), len(classes)))
    for train, held_out in review_folds(labels, groups, folds, seed):
        probe = make_probe(c, seed).fit(features[train], y[train])
        probabilities[np.ix_(held_out, probe.classes_)] = probe.predict_proba(features[held_out])
    return probabilities, classes


def review_folds(labels: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> list[tuple]:
    """(train, held-out) row indices of each fold: stratified by class, every group in one fold only."""
    y = np.searchsorted(sorted(set(labels)), labels)
    folds = min(folds, int(np.bincount(y).min()), len(set(groups)))
    if folds < 2:
        raise DataError(
            "Label review needs at least 2 images of every class, in 2 groups or more; add images or skip the review."
        )
    return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


def held_out_probabilities(
    features: np.ndarray, labels: np.ndarray, held_out: np.ndarray, c: float = REVIEW_C, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """P(class | image) for the ``held_out`` images from one probe fitted on ``features`` and ``labels`` alone
    (the same probe as out of fold): the test split judged without a single test label."""
    classes = sorted(set(labels))
    probe = make_probe(c, seed).fit(features, np.searchsorted(classes, labels))
    probabilities = np.zeros((len(held_out), len(classes)))
    if len(held_out):
        probabilities[:, probe.classes_] = probe.predict_proba(held_out)
    return probabilities, classes


def likely_label_errors(
    rows: pd.DataFrame, probabilities: np.ndarray, classes: list[str], ranker: str = REVIEW_RANKERS[0]
) -> pd.DataFrame:
    """Rows ranked by ``ranker``, the likeliest label errors first; ``flagged`` marks the ones it calls errors.

    ``probability``: by the probability of the given label, lowest first; flagged where the probe's likeliest
    class is another. ``cleanlab``: the label issues cleanlab's confident learning finds (per-class thresholds,
    noise rates estimated from the data; the test split on its own, so no test label moves a train or validation
    image) first, then the rest, each part by the given label's probability. A label the probe does not know (a
    class only the test split holds) has probability 0 and is flagged."""
    if ranker not in REVIEW_RANKERS:
        raise ValueError(f"Invalid ranker {ranker!r}. Only {', '.join(REVIEW_RANKERS)} are supported.")
    known = rows.label.isin(classes).to_numpy()
    y = np.searchsorted(classes, rows.label).clip(max=len(classes) - 1)
    given = np.where(known, probabilities[np.arange(len(rows)), y], 0.0)
    flagged = ~known
    if ranker == "cleanlab":
        from cleanlab.filter import find_label_issues

        test = (rows.split == "test").to_numpy() if "split" in rows else np.zeros(len(rows), bool)
        for pool in (known & ~test, known & test):  # apart: no test label moves a train or validation image
            if len(set(y[pool])) > 1:
                flagged[pool] = find_label_issues(y[pool], probabilities[pool], n_jobs=1)
            else:  # cleanlab needs two classes: a pool of one is flagged where the probe's likeliest class is another
                flagged[pool] = probabilities[pool].argmax(1) != y[pool]
    else:
        flagged |= probabilities.argmax(1) != y
    table = pd.DataFrame(
        {
            "path": rows.path.to_numpy(),
            "split": rows.split.to_numpy() if "split" in rows else "",
            "label": rows.label.to_numpy(),
            "label_probability": given.round(4),
            "suggested_label": np.asarray(classes)[probabilities.argmax(1)],
            "suggested_probability": probabilities.max(1).round(4),
            "flagged": flagged,
            **{f"p_{name}": probabilities[:, k].round(4) for k, name in enumerate(classes)},  # what the widget shows
            "action": "",
            "new_label": "",
            "note": "",
        }
    )
    order = np.lexsort((given, ~flagged)) if ranker == "cleanlab" else np.argsort(given, kind="stable")
    return table.iloc[order].reset_index(drop=True)
