"""Notebooks merge as notebooks: nbdime merges the template's change and the user's cell by cell, so the result
is a valid notebook; a cell both sides changed holds both versions between conflict markers, and is named."""

from dataclasses import dataclass

import nbformat
from nbdime.merging import merge_notebooks
from nbformat.v4.nbbase import random_cell_id

# nbdime labels the two sides local and remote; say whose each is.
LABELS = {"<<<<<<< local": "<<<<<<< yours", ">>>>>>> remote": ">>>>>>> template"}
CONFLICT_START = "<<<<<<< "
MARKS = ("<<<<<<<", "=======", ">>>>>>>")
CONFLICT_KEY = "nbdime-conflicts"  # where nbdime records a metadata conflict


@dataclass
class MergedNotebook:
    text: str
    conflicts: list[str]  # one line per cell left with both versions


def merge(base: str, yours: str, template: str) -> MergedNotebook:
    """Three-way merge of notebook texts: ``base`` (the template as baked), ``yours`` and ``template`` (new)."""
    base_nb, yours_nb, template_nb = (nbformat.reads(text, as_version=4) for text in (base, yours, template))
    merged, decisions = merge_notebooks(base_nb, yours_nb, template_nb)
    for cell in merged.cells:
        cell.source = relabel(cell.source)
    tidy_cell_ids(merged)
    nbformat.validate(merged)
    conflicts = describe_conflicts(merged)
    if any(decision.conflict for decision in decisions) and not conflicts:
        conflicts = ["a conflict nbdime could not mark in a cell"]
    return MergedNotebook(nbformat.writes(merged) + "\n", conflicts)


def relabel(source: str) -> str:
    for nbdime_label, label in LABELS.items():
        source = source.replace(nbdime_label, label)
    return source


def tidy_cell_ids(notebook: nbformat.NotebookNode) -> None:
    """Cell ids exist from format 4.5 on: the merge can mix cells with and without them (JupyterLab saves 4.5)."""
    with_ids = (notebook.nbformat, notebook.nbformat_minor) >= (4, 5)
    for cell in notebook.cells:
        if with_ids and not cell.get("id"):
            cell["id"] = random_cell_id()
        elif not with_ids:
            cell.pop("id", None)


def describe_conflicts(notebook: nbformat.NotebookNode) -> list[str]:
    found = [f"notebook metadata ({CONFLICT_KEY})"] if CONFLICT_KEY in notebook.metadata else []
    for number, cell in enumerate(notebook.cells, start=1):
        if CONFLICT_START in cell.source or CONFLICT_KEY in cell.metadata:
            found.append(f"cell {number} ({cell.cell_type}: {first_line(cell.source)})")
    return found


def first_line(source: str) -> str:
    """The cell's first line that is not a marker, shortened: enough to find it."""
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.startswith(MARKS)]
    text = lines[0] if lines else ""
    return text if len(text) <= 60 else text[:57] + "..."
