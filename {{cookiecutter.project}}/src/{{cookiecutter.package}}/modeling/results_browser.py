"""Browsing the scored test images in the notebook: filter by true and predicted class, sort by loss or
confidence, page through them with their probabilities, and ask for any one's Grad-CAM map.

``ResultsPages`` chooses and orders what is shown; ``ResultsBrowser`` is the widget over it."""

import html
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..core.images import open_rgb_or_grey
from .explain import heat_maps

ANY = "any"
SORTS = ("loss", "confidence")
THUMBNAIL = 160


@dataclass(frozen=True)
class Scored:
    index: int  # position in the evaluation's test arrays
    path: str
    true: str
    predicted: str
    probabilities: dict[str, float]
    loss: float  # -log p(true class)
    confidence: float  # the highest probability


class ResultsPages:
    def __init__(self, paths: list[str], y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> None:
        losses = -np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0))
        self.classes = classes
        self.all = [
            Scored(i, path, classes[y], classes[int(p.argmax())], dict(zip(classes, map(float, p))), loss, p.max())
            for i, (path, y, p, loss) in enumerate(zip(paths, y_true, probs, losses.tolist()))
        ]

    def select(self, true: str = ANY, predicted: str = ANY, sort: str = "loss") -> list[Scored]:
        """The images of that true and predicted class, largest loss (or highest confidence) first."""
        if sort not in SORTS:
            raise ValueError(f"Sort by {' or '.join(SORTS)}, not {sort!r}.")
        chosen = [s for s in self.all if true in (ANY, s.true) and predicted in (ANY, s.predicted)]
        return sorted(chosen, key=lambda s: -getattr(s, sort))


class ResultsBrowser:
    """The widget: filters, a page of thumbnails with their probabilities, a Grad-CAM button under each."""

    def __init__(self, evaluation, per_page: int = 6) -> None:
        import ipywidgets as w

        self.evaluation, self.per_page, self.page = evaluation, per_page, 0
        classes = evaluation.metrics.classes
        self.pages = ResultsPages(evaluation.test_paths, evaluation.y_test, evaluation.probs, classes)
        self.true = w.Dropdown(options=[ANY, *classes], description="True")
        self.predicted = w.Dropdown(options=[ANY, *classes], description="Predicted")
        self.sort = w.Dropdown(options=SORTS, description="Sort by")
        self.back, self.on = w.Button(description="Previous"), w.Button(description="Next")
        self.status, self.grid = w.HTML(), w.GridBox(layout=w.Layout(grid_template_columns="repeat(3, 1fr)"))
        for control in (self.true, self.predicted, self.sort):
            control.observe(lambda _: self.show(reset=True), names="value")
        self.back.on_click(lambda _: self.turn(-1))
        self.on.on_click(lambda _: self.turn(1))
        filters = w.HBox([self.true, self.predicted, self.sort])
        self.box = w.VBox([filters, w.HBox([self.back, self.on, self.status]), self.grid])
        self.show()

    def selection(self) -> list[Scored]:
        return self.pages.select(self.true.value, self.predicted.value, self.sort.value)

    def turn(self, step: int) -> None:
        pages = max(1, -(-len(self.selection()) // self.per_page))
        self.page = min(max(self.page + step, 0), pages - 1)
        self.show()

    def show(self, reset: bool = False) -> None:
        self.page = 0 if reset else self.page
        chosen = self.selection()
        shown = chosen[self.page * self.per_page : (self.page + 1) * self.per_page]
        first = self.page * self.per_page + 1 if shown else 0
        self.status.value = f"{first}-{first + len(shown) - 1 if shown else 0} of {len(chosen)} test images"
        self.grid.children = [self.card(item) for item in shown]

    def card(self, item: Scored):
        import ipywidgets as w

        image = w.Image(value=_png(open_rgb_or_grey(item.path)), format="png")
        button = w.Button(description="Grad-CAM", tooltip="where the model looked, for the class it predicted")
        button.on_click(lambda _: setattr(image, "value", self.heat_map(item)))
        return w.VBox([image, w.HTML(_caption(item)), button])

    def heat_map(self, item: Scored) -> bytes:
        config, model = self.evaluation.config, self.evaluation.model
        predicted = self.pages.classes.index(item.predicted)
        overlay = heat_maps(model, [item.path], config["resolution"], config["resize"], [predicted])[0]
        return _png(Image.fromarray(overlay))


def browse_results(evaluation, per_page: int = 6):
    """The browser over an evaluation's test images (the notebook's one call)."""
    return ResultsBrowser(evaluation, per_page).box


def _png(image: Image.Image) -> bytes:
    image = image.copy()
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _caption(item: Scored) -> str:
    right = "right" if item.true == item.predicted else "wrong"
    ranked = sorted(item.probabilities.items(), key=lambda kv: -kv[1])
    probabilities = ", ".join(f"{html.escape(name)} {p:.2f}" for name, p in ranked)
    return (
        f"<small><b>{right}</b>: true {html.escape(item.true)}, predicted {html.escape(item.predicted)}"
        f"<br>{probabilities}<br>loss {item.loss:.3f}</small>"
    )
