"""Tables people write by hand or save from a spreadsheet (CSV or TSV), read one row at a time.

Acquisition reads its manifests and URL lists here, the batch scorer its lists of images, so the same file
reads the same way everywhere: a byte-order mark is dropped (spreadsheets write one), the delimiter is a tab
for ``.tsv`` files or when the first line holds one, header names are stripped and lower-cased, values are
stripped, blank rows are skipped, and every row carries its file and line number for messages.
"""

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

SUFFIXES = (".csv", ".tsv")


def delimiter(path: Path, first_line: str) -> str:
    return "\t" if path.suffix.lower() == ".tsv" or "\t" in first_line else ","


def _open(path: Path):
    return path.open(newline="", encoding="utf-8-sig")  # utf-8-sig: drops a byte-order mark, reads plain UTF-8


def _first_line(path: Path) -> str:
    with _open(path) as f:
        return f.readline()


def delimiter_of(path: Path) -> str:
    return delimiter(path, _first_line(path))


def first_row(path: Path) -> list[str]:
    """The first line's fields, as written (a header, or the first entry of a list without one)."""
    line = _first_line(path)
    return next(csv.reader([line], delimiter=delimiter(path, line)), [])


def header(path: Path) -> list[str]:
    return [name.strip().lower() for name in first_row(path)]


def records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of each row that is not blank, the first line included."""
    line = 0
    try:
        with _open(path) as f:
            first = f.readline()
            reader = csv.reader(itertools.chain([first], f), delimiter=delimiter(path, first))
            for fields in reader:
                start, line = line + 1, reader.line_num  # a quoted value may span lines: name the row's first
                fields = [field.strip() for field in fields]
                if any(fields):
                    yield start, fields
    except UnicodeDecodeError:
        raise DataError(
            f"{path} near line {line + 1}: not UTF-8 text; save it as 'CSV UTF-8' (or UTF-8 text) and try again."
        ) from None
    except csv.Error as error:
        raise DataError(f"{path} line {line + 1}: not a readable CSV row ({error}).") from None


@dataclass(frozen=True)
class Row:
    path: Path
    line: int
    values: dict[str, str]  # header name -> value; a short row lacks its last names

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"


def rows(path: Path) -> Iterator[Row]:
    """The rows under the header line, each a mapping of header names to values."""
    lines = records(path)
    _, names = next(lines, (1, []))
    names = [name.lower() for name in names]
    for line, fields in lines:
        yield Row(path, line, dict(zip(names, fields)))
