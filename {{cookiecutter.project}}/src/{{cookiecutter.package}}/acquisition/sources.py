"""Where images come from: each source yields rows of (path, label, given_split, origin[, group]).

* a folder with one sub-folder per class (images at any depth inside it), optionally
  already split into ``train/``, ``val/`` (``valid/``, ``validation/``) and ``test/``;
* a CSV manifest ``path,label[,split][,group]`` with paths relative to the CSV (the group column, named by
  ``GROUP_COLUMN``, says which subject each image shows: a patient, a lesion, a session);
* a URL list (CSV or TSV of ``url,label``), downloaded once into a local folder;
* a bundled sample, written out as a folder (see ``samples``).
"""

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core import class_names, tables
from ..core.errors import DataError
from ..core.images import is_hidden, walk_images

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class Source:
    kind: str  # folder | csv | urls
    location: Path


def detect(location: Path) -> Source:
    """Which kind of source ``location`` is; a clear error when it is none of them."""
    if location.is_dir():
        return Source("folder", location)
    if not location.is_file():
        raise DataError(
            f"Data source {str(location)!r} does not exist. Set DATA_DIR (or --data-dir) to a folder with one "
            "sub-folder of images per class, a CSV manifest (path,label[,split]) or a URL list (url,label)."
        )
    header = tables.first_row(location)
    first = header[0].strip().lower() if header else ""
    if first == "url" or first.startswith(("http://", "https://")):
        return Source("urls", location)
    if "path" in [h.strip().lower() for h in header] and "label" in [h.strip().lower() for h in header]:
        return Source("csv", location)
    raise DataError(
        f"{str(location)!r} is neither a CSV manifest (header 'path,label[,split]') nor a URL list "
        f"(header 'url,label', or rows starting with http:// or https://); its first line reads {header!r}."
    )


def rows(source: Source, download_dir: Path, workers: int = 8, group_column: str = "") -> Iterable[dict]:
    """The source's rows; a URL list is downloaded into ``download_dir`` first. A CSV manifest's ``group_column``
    (when it has one) fills each row's ``group``."""
    if source.kind == "folder":
        return folder_rows(source.location)
    if source.kind == "csv":
        return csv_rows(source.location, group_column)
    from .download import download_all

    return download_all(url_entries(source.location), download_dir, workers=workers)


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))


def folder_rows(root: Path) -> Iterator[dict]:
    """Rows for a folder of class folders, or of split folders holding class folders."""
    folders = visible_dirs(root)
    split_dirs = [d for d in folders if d.name.lower() in SPLIT_FOLDERS]
    if split_dirs:
        others = [d.name for d in folders if d not in split_dirs]
        if others:
            raise DataError(
                f"{str(root)!r} mixes split folders ({', '.join(d.name for d in split_dirs)}) with other folders "
                f"({', '.join(others)}): put every class folder inside train/, val/ or test/, "
                "or remove the split folders."
            )
        classes = [(d, SPLIT_FOLDERS[s.name.lower()]) for s in split_dirs for d in visible_dirs(s)]
    elif len(folders) < 2:
        raise DataError(
            f"Data folder {str(root)!r} has {len(folders)} class sub-folder(s); "
            "put the images of each class in its own sub-folder (at least two classes)."
        )
    else:
        classes = [(d, "") for d in folders]
    for class_dir, _ in classes:  # every name checked before the first row: a bad one stops the run before any work
        class_names.check(class_dir.name, f"class folder in {str(class_dir.parent)!r}", "rename the folder")
    for class_dir, split in classes:
        yield from _class_rows(class_dir, split)


def _class_rows(class_dir: Path, split: str) -> Iterator[dict]:
    root = class_dir.parent.parent if split else class_dir.parent
    for path in walk_images(class_dir):
        yield {"path": str(path), "label": class_dir.name, "given_split": split, "origin": str(path.relative_to(root))}


def csv_rows(manifest: Path, group_column: str = "") -> Iterator[dict]:
    """Rows of a CSV (or TSV) manifest; paths are relative to the CSV's folder unless absolute. ``group_column``, when
    the manifest has it, gives each row its ``group`` (empty: an image of its own).

    The whole file is checked before the first row comes out (a second, streaming read: no file is in memory),
    so a bad line stops the run before any image is read or anything written."""
    deque(_manifest_rows(manifest), maxlen=0)
    yield from _manifest_rows(manifest, group_column.strip().lower())


def _manifest_rows(manifest: Path, group_column: str = "") -> Iterator[dict]:
    for row in tables.rows(manifest):
        path, label = row.get("path"), row.get("label")
        if not path or not label:
            raise DataError(f"{row.where}: 'path' and 'label' must both be filled in.")
        class_names.check(label, row.where, "write a plain class name in the label column")
        split = row.get("split").lower()
        if split and split not in SPLIT_FOLDERS:
            raise DataError(f"{row.where}: split {split!r} is not one of train, val, test (or leave it empty).")
        full = Path(path) if Path(path).is_absolute() else manifest.parent / path
        given = SPLIT_FOLDERS.get(split, "")
        yield {
            "path": str(full),
            "label": label,
            "given_split": given,
            "origin": path,
            "group": row.get(group_column) if group_column else "",
        }


def url_entries(url_list: Path) -> list[tuple[str, str]]:
    """(url, label) pairs of a CSV or TSV URL list, header optional."""
    entries = []
    for line, row in tables.records(url_list):
        if line == 1 and row[0].lower() == "url":
            continue
        if len(row) < 2 or not row[1]:
            delimiter = tables.delimiter_of(url_list)
            raise DataError(f"{url_list} line {line}: expected 'url{delimiter}label', got {row!r}.")
        # the label becomes the download folder: checked here, where the file and line are known
        class_names.check(row[1], f"{url_list} line {line}", "write a plain class name in the label column")
        entries.append((row[0], row[1]))
    if not entries:
        raise DataError(f"{url_list} lists no URLs.")
    return entries
