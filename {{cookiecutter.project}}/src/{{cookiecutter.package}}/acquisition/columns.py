"""No column ignored in silence: every column of a CSV manifest (or URL list) that acquisition does not read, each
with a word on what it may be: a subject identifier that ``GROUP_COLUMN`` should name, or a misspelt name.

A column looks like a subject identifier when its name says so (patient, subject, lesion, session, ... or ends in
``id``) and its values repeat (several images per value); one value per row is a per-image name, not a group.
"""

import difflib
import re
from pathlib import Path

from ..core import tables
from .sources import Source

READ = {"csv": ("path", "label", "split"), "urls": ("url", "label")}
SUBJECT_NAMES = re.compile(
    r"patient|subject|lesion|group|session|case|study|series|scan|participant|person|individual|donor|animal|"
    r"specimen|slide|visit|panel|plate|site|(^|[_\s-])id$"
)


def unused_columns(source: Source, group_column: str) -> dict[str, str]:
    """Each column of ``source``'s header that acquisition does not read, with a note; empty for a folder (or a URL
    list without a header)."""
    if source.kind not in READ:
        return {}
    names = tables.header(source.location)
    if source.kind == "urls" and (not names or names[0] != "url"):
        return {}  # no header: every line is an entry
    read = {*READ[source.kind], group_column.strip().lower()}
    unused = [name for name in names if name not in read]
    if not unused:
        return {}
    values = _values(source.location, unused)
    return {name: note(name, values[name], READ[source.kind], group_column) for name in unused}


def group_column_used(source: Source, group_column: str) -> str:
    """``group_column`` when ``source`` is a CSV manifest that has it, else ""."""
    column = group_column.strip().lower()
    return column if column and source.kind == "csv" and column in tables.header(source.location) else ""


def _values(path: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    """Per column: (rows with a value, distinct values)."""
    seen: dict[str, set[str]] = {name: set() for name in names}
    filled = dict.fromkeys(names, 0)
    for row in tables.rows(path):
        for name in names:
            if value := row.get(name):
                seen[name].add(value)
                filled[name] += 1
    return {name: (filled[name], len(seen[name])) for name in names}


def note(name: str, counts: tuple[int, int], known: tuple[str, ...], group_column: str) -> str:
    """What an unused column may be, in a few words."""
    filled, distinct = counts
    if filled == 0:
        return "empty"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"not read; did you mean {close[0]!r}?"
    if SUBJECT_NAMES.search(name) and distinct < filled:
        return (
            f"looks like a subject identifier ({distinct} values over {filled} images): set GROUP_COLUMN={name!r} "
            "to keep each one's images in one split" + ("" if group_column.strip() else " (GROUP_COLUMN is off)")
        )
    return f"not read ({distinct} distinct values over {filled} rows)"


def describe(unused: dict[str, str]) -> list[str]:
    """One line per unused column, for the summary and the data report."""
    return [f"`{name}`: {text}" for name, text in unused.items()]
