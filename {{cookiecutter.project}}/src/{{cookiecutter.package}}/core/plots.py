"""Figures the notebooks show and the run folder keeps."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from .images import load_image


def save(fig: plt.Figure, path: Path | None) -> plt.Figure:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def class_counts(manifest: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    counts = manifest[manifest.status == "ok"].groupby(["label", "split"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[s for s in ("train", "val", "test") if s in counts.columns])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts.plot.bar(stacked=True, ax=ax, rot=0)
    ax.set(title="Images per class and split", xlabel="class", ylabel="images")
    return save(fig, path)


def sample_grid(manifest: pd.DataFrame, per_class: int = 6, path: Path | None = None, seed: int = 0) -> plt.Figure:
    usable = manifest[manifest.status == "ok"]
    classes = sorted(usable.label.unique())
    fig, axes = plt.subplots(len(classes), per_class, figsize=(1.6 * per_class, 1.7 * len(classes)), squeeze=False)
    for row, label in zip(axes, classes):
        rows = usable[usable.label == label]
        picks = rows.sample(min(per_class, len(rows)), random_state=seed)
        for ax, image_path in zip(row, list(picks.path) + [None] * per_class):
            ax.axis("off")
            if image_path is not None:
                ax.imshow(load_image(image_path, 96))
        row[0].set_title(label, loc="left", fontsize=10)
    fig.suptitle("Sample images per class")
    return save(fig, path)


def image_sizes(manifest: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    usable = manifest[manifest.status == "ok"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    left.scatter(usable.width, usable.height, s=8, alpha=0.4)
    left.set(title="Image sizes", xlabel="width (px)", ylabel="height (px)")
    right.hist(usable.width / usable.height.clip(lower=1), bins=30)
    right.set(title="Aspect ratio (width / height)", xlabel="ratio", ylabel="images")
    return save(fig, path)


def validation_curve(curve: list[dict[str, float]], best_c: float, path: Path | None = None) -> plt.Figure:
    frame = pd.DataFrame(curve)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogx(frame.C, frame.train_accuracy, "o-", label="train")
    ax.semilogx(frame.C, frame.val_accuracy, "o-", label="validation")
    ax.axvline(best_c, color="grey", linestyle="--", label=f"chosen C = {best_c:g}")
    ax.set(title="Linear probe: accuracy against regularisation C", xlabel="C", ylabel="accuracy")
    ax.legend()
    return save(fig, path)


def roc(y_true: np.ndarray, probs: np.ndarray, classes: list[str], path: Path | None = None) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    positives = [1] if len(classes) == 2 else range(len(classes))
    for k in positives:
        fpr, tpr, _ = roc_curve(y_true == k, probs[:, k])
        ax.plot(fpr, tpr, label=classes[k])
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(title="ROC curve (test split)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(fontsize=8)
    return save(fig, path)


def precision_recall(y_true: np.ndarray, probs: np.ndarray, classes: list[str], path: Path | None = None) -> plt.Figure:
    """Each class against the rest: what precision a recall costs (more telling than ROC for a rare class)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for k, name in enumerate(classes):
        precision, recall, _ = precision_recall_curve(y_true == k, probs[:, k])
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y_true == k, probs[:, k]):.3f})")
    ax.set(title="Precision-recall (test split)", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return save(fig, path)


def confusion(matrix: list[list[int]], classes: list[str], path: Path | None = None) -> plt.Figure:
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(title="Confusion matrix (test split)", xlabel="predicted", ylabel="true")
    return save(fig, path)


def training_curves(rows: list[dict[str, float]], best_epoch: int, path: Path | None = None) -> plt.Figure:
    frame = pd.DataFrame(rows)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in ((loss, "loss"), (acc, "accuracy")):
        ax.plot(frame.epoch, frame[f"train_{metric}"], "o-", label="train (augmented)")
        ax.plot(frame.epoch, frame[f"val_{metric}"], "o-", label="validation")
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        ax.set(title=f"Fine-tuning: {metric} per epoch", xlabel="epoch", ylabel=metric)
        ax.legend()
    return save(fig, path)


def thumbnail_rows(rows: list[tuple[str, list[tuple[str, str]]]], columns: int, title: str, path: Path | None):
    """One row of thumbnails per (row title, [(image path, caption), ...])."""
    fig, axes = plt.subplots(
        max(1, len(rows)),
        columns,
        figsize=(1.8 * columns, 2.0 * max(1, len(rows))),
        squeeze=False,
        layout="constrained",
    )
    for ax_row, (row_title, images) in zip(axes, rows):
        for ax, item in zip(ax_row, images + [None] * columns):
            ax.axis("off")
            if item is not None:
                ax.imshow(load_image(item[0], 96))
                ax.set_title(item[1], fontsize=7)
        ax_row[0].text(-0.1, 0.5, row_title, transform=ax_row[0].transAxes, ha="right", va="center", fontsize=8)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "none found", ha="center", va="center")
    fig.suptitle(title)
    return save(fig, path)


def duplicate_groups(manifest: pd.DataFrame, max_groups: int = 8, per_group: int = 5, path: Path | None = None):
    grouped = manifest[(manifest.status == "ok") & (manifest.dup_count > 1)]
    biggest = grouped.dup_group.value_counts().index[:max_groups]
    rows = [
        (
            group,
            [
                (r.path, f"{r.label} · {r.split}")
                for r in grouped[grouped.dup_group == group].head(per_group).itertuples()
            ],
        )
        for group in biggest
    ]
    return thumbnail_rows(rows, per_group, "Duplicate groups (label · split)", path)


def label_errors(errors: pd.DataFrame, count: int = 12, columns: int = 6, path: Path | None = None):
    top = errors.head(count)
    items = [(r.path, f"{r.label}: p={r.label_probability:.3f}\nlooks {r.suggested_label}") for r in top.itertuples()]
    rows = [(f"#{i + 1}", items[i : i + columns]) for i in range(0, len(items), columns)]
    return thumbnail_rows(rows, columns, "Likely label errors (given label: its probability)", path)


def sweep(table: pd.DataFrame, parameters: list[str], path: Path | None = None) -> plt.Figure:
    """Each swept parameter against the validation accuracy of every trial (the best ringed)."""
    fig, axes = plt.subplots(1, len(parameters), figsize=(4 * len(parameters), 3.5), squeeze=False)
    best = table.val_accuracy.idxmax()
    for ax, name in zip(axes[0], parameters):
        labels = table[name].astype(str)
        order = list(dict.fromkeys(labels))
        x = labels.map(order.index)
        ax.scatter(x, table.val_accuracy)
        ax.scatter([x[best]], [table.val_accuracy[best]], s=160, facecolors="none", edgecolors="red", label="best")
        ax.set_xticks(range(len(order)), order)
        ax.set(xlabel=name, ylabel="validation accuracy")
    axes[0][0].legend()
    fig.tight_layout()
    return save(fig, path)


def heat_maps(overlays: list[np.ndarray], captions: list[str], title: str, path: Path | None = None) -> plt.Figure:
    """Images with a Grad-CAM heat map laid over them (``modeling.explain``)."""
    columns = max(1, min(6, len(overlays)))
    rows = max(1, -(-len(overlays) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, overlay, caption in zip(axes.flat, overlays, captions):
        ax.imshow(overlay)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title)
    return save(fig, path)
