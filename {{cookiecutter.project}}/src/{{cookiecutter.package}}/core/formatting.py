"""How numbers, tables and links read in every report, notebook and command: one way each."""

import os
from pathlib import Path


def with_interval(value: float, interval: list[float] | None) -> str:
    """``0.8512 [0.8243, 0.8784]``: a score and its 95% bootstrap interval, when there is one."""
    return f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")


def markdown_table(frame, index: bool = False) -> str:
    """A pandas DataFrame as a GitHub table (pandas itself is left to the callers: serving never loads it)."""
    frame = frame.reset_index() if index else frame
    if frame.empty:
        return "_none_"
    cells = [[str(v).replace("|", "\\|").replace("\n", " ") for v in row] for row in frame.itertuples(index=False)]
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def relative_link(target: Path, document: Path) -> str:
    """``target`` as a link from ``document``: relative, with forward slashes, so the report moves with its run."""
    return Path(os.path.relpath(target, document.parent)).as_posix()
