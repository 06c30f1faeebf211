"""The label review in the notebook: one doubtful image at a time, with its label, the probe's probabilities and
its suggestion, and buttons to keep, relabel or exclude it (and undo). A view of ``LabelReview``, which does the
work and writes the labels review file."""

import html
import io

import pandas as pd

from ..core.images import open_rgb_or_grey
from ..core.run_folder import RunFolder
from .label_review import Candidate, LabelReview

THUMBNAIL = 256  # pixels, the longer side


def review_labels(run: RunFolder, label_errors: pd.DataFrame):
    """The widget over this run's doubtful labels (the notebook's one call)."""
    return ReviewWidget(LabelReview.from_run(run, label_errors)).box


class ReviewWidget:
    def __init__(self, review: LabelReview) -> None:
        import ipywidgets as w

        self.review, self.position = review, 0
        self.title, self.facts, self.saved = w.HTML(), w.HTML(), w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width=f"{THUMBNAIL}px"))
        self.new_label = w.Dropdown(options=review.classes, description="New label", layout=w.Layout(width="auto"))
        buttons = {name: w.Button(description=name, layout=w.Layout(width="auto")) for name in BUTTONS}
        buttons["Keep"].button_style, buttons["Relabel"].button_style = "success", "warning"
        buttons["Exclude"].button_style = "danger"
        for name, button in buttons.items():
            button.on_click(lambda _, name=name: self.press(name))
        decide = w.HBox([buttons["Keep"], self.new_label, buttons["Relabel"], buttons["Exclude"]])
        move = w.HBox([buttons["Previous"], buttons["Next"], buttons["Undo"]])
        self.box = w.VBox([self.title, w.HBox([self.image, self.facts]), decide, move, self.saved])
        self.show()

    @property
    def current(self) -> Candidate | None:
        candidates = self.review.candidates
        return candidates[self.position] if candidates else None

    def press(self, name: str) -> None:
        """What a button does; every decision moves on to the next image."""
        candidate = self.current
        if name == "Undo":
            undone = self.review.undo()
            names = [c.name for c in self.review.candidates]
            self.position = names.index(undone) if undone in names else self.position
        elif name in ("Previous", "Next"):
            step = -1 if name == "Previous" else 1
            self.position = min(max(self.position + step, 0), max(len(self.review.candidates) - 1, 0))
        elif candidate is not None and (name != "Relabel" or self.new_label.value):
            if name == "Keep":
                self.review.keep(candidate)
            elif name == "Exclude":
                self.review.exclude(candidate)
            else:
                self.review.relabel(candidate, self.new_label.value)
            self.position = min(self.position + 1, len(self.review.candidates) - 1)
        self.show()

    def show(self) -> None:
        candidate, count = self.current, len(self.review.candidates)
        if candidate is None:
            self.title.value = "<b>Nothing to review:</b> no conflicting duplicates and no doubtful label."
            self.saved.value = _saved(self.review)
            return
        decided = self.review.decision(candidate) or "kept as it is"
        self.title.value = (
            f"<b>{self.position + 1} of {count}</b> · {html.escape(candidate.reason)} · decision: <b>{decided}</b>"
        )
        self.image.value = _png(candidate.path)
        self.facts.value = _facts(candidate)
        self.new_label.value = other_label(candidate, self.review.classes)
        self.saved.value = _saved(self.review)


BUTTONS = ("Keep", "Relabel", "Exclude", "Previous", "Next", "Undo")


def other_label(candidate: Candidate, classes: list[str]) -> str | None:
    """What Relabel offers first: the suggestion when it differs from the given label, else the likeliest other
    class (relabelling to the same class would change nothing)."""
    others = [c for c in classes if c != candidate.label]
    if candidate.suggestion in others:
        return candidate.suggestion
    return max(others, key=lambda c: candidate.probabilities.get(c, 0.0)) if others else None


def _png(path: str) -> bytes:
    image = open_rgb_or_grey(path)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _facts(candidate: Candidate) -> str:
    bars = "".join(
        f"<tr><td>{html.escape(name)}</td><td><div style='background:#4c78a8;height:0.8em;width:{120 * p:.0f}px'>"
        f"</div></td><td>{p:.3f}</td></tr>"
        for name, p in sorted(candidate.probabilities.items(), key=lambda item: -item[1])
    )
    return (
        f"<div style='padding-left:1em'><code>{html.escape(candidate.name)}</code> ({candidate.split or 'no split'})"
        f"<br>given label <b>{html.escape(candidate.label)}</b>, suggested <b>{html.escape(candidate.suggestion)}</b>"
        f"<table>{bars}</table></div>"
    )


def _saved(review: LabelReview) -> str:
    lines = review.lines()
    if lines.empty:
        return f"<i>No corrections in {html.escape(str(review.review_file))} yet.</i>"
    rows = "".join(
        f"<li><code>{html.escape(r.path)}</code>: {r.action}{' to ' + html.escape(r.new_label) if r.new_label else ''}"
        "</li>"
        for r in lines.itertuples()
    )
    return (
        f"<b>{len(lines)} correction(s) in {html.escape(review.review_file.name)}</b>, applied by the next run of "
        f"01_acquire_data (the images themselves are never changed):<ul>{rows}</ul>"
    )
