"""What a class name may be: one rule for every source (class folders, CSV manifests, URL lists) and the label review.

A class name becomes a folder name (downloads), part of file names and a word in reports and tables, so it must be
one plain path component on every system: not empty, no leading or trailing space (sources strip their values, so
'cat ' and 'cat' would be two classes), not ``.`` or ``..``, no ``/`` or ``\\``, no control characters, and short
enough for a file name. ``inside`` is the second line of defence for anything built from a name.
"""

import unicodedata
from pathlib import Path

from .errors import DataError

MAX_CHARACTERS = 100
MAX_BYTES = 200  # UTF-8; file names stop at 255 bytes and a class name may be joined with other words
# control characters, lone surrogates (a folder name that is not valid UTF-8) and line or paragraph breaks
_CONTROL = {"Cc", "Cs", "Zl", "Zp"}
RULE = f"1 to {MAX_CHARACTERS} characters, no / or \\, not . or .., no control characters"


def problem(name: str) -> str:
    """Why ``name`` cannot be a class name, or "" when it can."""
    if any(unicodedata.category(character) in _CONTROL for character in name):
        return "holds a control character"
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "starts or ends with a space"
    if name in (".", ".."):
        return "is a folder reference, not a name"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    if len(name) > MAX_CHARACTERS or len(name.encode("utf-8")) > MAX_BYTES:
        return f"is longer than {MAX_CHARACTERS} characters ({MAX_BYTES} bytes as UTF-8)"
    return ""


def check(name: str, where: str, fix: str) -> str:
    """``name`` when it is a valid class name, else a DataError naming ``where`` (file and line), the name, the fix."""
    reason = problem(name)
    if reason:
        shown = name if len(name) <= 2 * MAX_CHARACTERS else name[:MAX_CHARACTERS] + "..."
        shown = repr(shown)  # repr: control characters show, and the message stays one line
        raise DataError(f"{where}: class name {shown} {reason}; {fix} ({RULE}).")
    return name


def is_inside(folder: Path, path: Path) -> bool:
    """Whether ``path`` resolves (symbolic links, ``..`` and all) to ``folder`` or somewhere below it."""
    return path.resolve().is_relative_to(folder.resolve())


def inside(folder: Path, *parts: str) -> Path:
    """``folder / parts``, refused unless it resolves inside ``folder``: a checked name always does, but a symbolic
    link, or a caller that skipped ``check``, must not make a write land elsewhere."""
    path = folder.joinpath(*parts)
    if not is_inside(folder, path):
        raise DataError(f"{str(path)!r} leads outside {str(folder)!r}; refusing to write there. Use a plain name.")
    return path
