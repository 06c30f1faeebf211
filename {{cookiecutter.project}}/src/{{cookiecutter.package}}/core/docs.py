"""The project's TDSP documents under ``docs/`` point at the newest report a run wrote.

Each page keeps what a person wrote; only the lines between the two markers below are rewritten.
Runs outside the project (tests, temporary folders) leave the pages alone.
"""

from datetime import datetime
from pathlib import Path

from .formatting import relative_link
from .paths import project_root

BEGIN = "<!-- newest run: written by the pipeline -->"
END = "<!-- end of newest run -->"


def point_at_newest(report: Path) -> Path | None:
    """Make ``docs/<report name>`` of the project link to ``report`` (a run's copy); None when not in the project."""
    root = project_root()
    page = root / "docs" / report.name
    if not report.resolve().is_relative_to(root.resolve()) or not page.is_file():
        return None
    link = relative_link(report, page)
    block = f"{BEGIN}\nNewest: [{report.relative_to(root).as_posix()}]({link}), {datetime.now():%Y-%m-%d %H:%M}.\n{END}"
    text = page.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        lines = text.split("\n", 1)  # after the title
        text = f"{lines[0]}\n\n{block}\n" + (lines[1] if len(lines) > 1 else "")
    page.write_text(text, encoding="utf-8")
    return page
