"""The CHANGELOG entries one bake of the template has and an older bake lacks."""

from pathlib import Path

CHANGELOG = "CHANGELOG.md"


def entries(text: str) -> list[str]:
    """Each list item at the left margin, with its indented continuation lines."""
    found: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith(("- ", "* ")):
            found.append([line])
        elif found and line.startswith(" ") and line.strip():
            found[-1].append(line)
        elif not line.strip() and found:
            found.append([])  # a blank line ends the item
    return ["\n".join(lines) for lines in found if lines]


def new_entries(old_bake: Path, new_bake: Path) -> list[str]:
    """Entries of the newer bake's CHANGELOG missing from the older one's, in the newer one's order."""
    old, new = old_bake / CHANGELOG, new_bake / CHANGELOG
    if not new.is_file():
        return []
    seen = set(entries(old.read_text())) if old.is_file() else set()
    return [entry for entry in entries(new.read_text()) if entry not in seen]
