"""Batch scoring: a folder of images, or a CSV of paths, scored into a CSV with an exported model.

Built not to lose work, whatever the number of images:
* inputs are listed lazily and decoded by a pool of threads a bounded number ahead, so memory stays flat;
* every input gets a row; a file that cannot be scored gets the reason in the ``error`` column, and the run
  goes on;
* rows go to ``<output>.partial``, flushed after each batch, and replace the output only once all are written:
  an interrupted or failed run never leaves a truncated output, and an earlier complete one stays as it was;
  ``resume`` continues from the rows the partial file holds, and only with the model, precision, input and shard
  that wrote them (see ``provenance``);
* a shard scores every n-th input (see ``shards``), so many machines can share one collection;
* paths are written as the file system gives them: a name that is not UTF-8 keeps its bytes (``surrogateescape``
  on every CSV this writes or reads back), so it is scored like any other and ``--resume`` gets past it.
"""

import csv
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial as partial_function
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm  # a widget in a notebook, a text bar in a terminal

from ...core import tables
from ...core.batching import batches
from ...core.cpu import available_cores
from ...core.errors import ConfigError, DataError
from ...core.images import IMAGE_EXTENSIONS, ImageRefused, PixelBudget, read_checked, walk_images
from ..predict import PRECISIONS, ExportedModel, load_model, predict
from . import provenance, shards

ENCODING = shards.ENCODING  # a path's undecodable bytes are written as they are, and read back the same


@dataclass(frozen=True)
class Item:
    path: str
    error: str = ""  # known before reading: a CSV row without a path


def columns(classes: list[str]) -> list[str]:
    return ["path", "prediction", *[f"p_{name}" for name in classes], "error"]


def input_items(source: Path) -> Iterator[Item]:
    """What to score, in a stable order, one at a time: every image under a folder, or a CSV's ``path`` column."""
    if source.is_dir():
        return (Item(str(path)) for path in walk_images(source))
    if source.is_file() and source.suffix.lower() in tables.SUFFIXES:
        if "path" not in tables.header(source):
            raise DataError(
                f"CSV {str(source)!r} needs a 'path' column (paths relative to the CSV are fine); "
                f"its first line reads {tables.first_row(source)!r}."
            )
        return _table_items(source)
    what = "does not exist" if not source.exists() else "is neither a folder nor a .csv/.tsv file"
    raise ConfigError(
        f"--input {str(source)!r} {what}: give a folder of images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
        "or a CSV with a 'path' column."
    )


def _table_items(table: Path) -> Iterator[Item]:
    for row in tables.rows(table):
        path = row.get("path")
        if path:
            yield Item(os.path.abspath(table.parent / path))  # relative to the CSV; an absolute path stays itself
        else:
            yield Item("", f"{row.where}: no path in this row; fill in its 'path' column")


# The decoding threads share one budget of pixels, so a folder of huge images cannot multiply memory by --workers.
DECODE_BUDGET = PixelBudget()


def decode(item: Item, resolution: int, resize: str) -> tuple[np.ndarray | None, str]:
    """The image as the model takes it, or None and the reason it cannot be scored."""
    if item.error:
        return None, item.error
    try:
        with open(item.path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return None, "empty file (0 bytes)"
            return read_checked(f, resolution, resize, budget=DECODE_BUDGET), ""
    except ImageRefused as refused:
        return None, str(refused)
    except OSError as error:  # missing, unreadable, a folder: before Pillow sees any byte
        return None, f"cannot read the file: {error.strerror or error}"


def decoded(items: Iterable[Item], decode_one, workers: int, ahead: int) -> Iterator[tuple]:
    """(item, image or None, error) in input order, decoded by ``workers`` threads (Pillow releases the GIL)
    at most ``ahead`` items before the one being used: memory does not grow with the number of inputs."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    pending = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(decode_one, item)))
            if len(pending) >= ahead:
                first, future = pending.popleft()
                yield first, *future.result()
        while pending:
            first, future = pending.popleft()
            yield first, *future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def rows_of(model: ExportedModel, batch: list[tuple]) -> list[list[str]]:
    """One CSV row per input of ``batch``; the decoded ones are predicted in one call."""
    images = [image for _, image, _ in batch if image is not None]
    probs = predict(model, np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)) if images else []
    answers = iter(zip(model.labels(probs), probs) if images else [])
    rows = []
    for item, image, error in batch:
        if image is None:
            rows.append([item.path, "", *[""] * len(model.classes), error])
        else:
            label, p = next(answers)
            rows.append([item.path, label, *[f"{x:.6f}" for x in p], ""])
    return rows


@dataclass(frozen=True)
class ScoringOptions:
    """How ``score`` runs: images per model call, decoding threads (0: one per core), going on from an interrupted
    run, the shard (``"i/n"``) to score, the model's precision and device, and whether to show a progress bar."""

    batch_size: int = 32
    workers: int = 0
    resume: bool = False
    shard: "str | shards.Shard | None" = None
    precision: str = "fp32"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: use a whole number of 1 or more (default 32).")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: use a whole number of 1 or more, or 0 for one per core.")
        if isinstance(self.shard, str):
            object.__setattr__(self, "shard", shards.parse(self.shard))


def score(
    model_dir: str | Path, source: Path, output: Path, options: ScoringOptions | None = None, **changes: object
) -> Path:
    """Write one CSV row per input: path, predicted label, probability of each class, error (empty when fine).

    ``model_dir`` is an exported model folder or a registered version (``models:/<name>@<alias>``). ``shard``
    (``"i/n"``) scores every n-th input into a part of ``output``; without it every input is scored, whatever the
    environment (the command line reads a launcher's, see ``shards.from_environment``). ``changes`` are
    ``ScoringOptions`` fields by name, a shorthand (``score(model, images, out, batch_size=8)``). Returns the file
    written: ``output``, or the shard's part."""
    source, output = Path(source), Path(output)
    options = replace(options or ScoringOptions(), **changes)
    shard, resume = options.shard, options.resume
    target = shard.part(output) if shard else output
    _check_paths(source, output, target)
    model, model_file, registered = _load(model_dir, options.precision, options.device)
    total = sum(1 for _ in input_items(source))  # one pass to count: lists nothing, checks the CSV up front
    if not total:
        raise DataError(f"No images found in {str(source)!r} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}).")
    partial = shards.partial_path(target)
    if resume and not partial.exists() and target.exists():
        print(f"{target} is complete: nothing to resume (run without --resume to score again).")
        return target
    record = provenance.describe(model_file, options.precision, model.decision, registered, source, shard)
    if resume and partial.exists():
        provenance.check_resume(partial, record)  # before kept_rows cuts anything off the partial file
    provenance.write(partial, record)  # before the first row: a partial file always has its record
    items = (item for position, item in enumerate(input_items(source)) if not shard or shard.takes(position))
    counts = _write_all(model, items, partial, shard.size(total) if shard else total, options)
    if shard:
        provenance.write(target, record)  # merge checks the parts against each other
    os.replace(partial, target)  # all or nothing: the output is never a partly written file
    provenance.remove(partial)
    print(f"scored {counts['scored']}, errors {counts['errors']}: {target}")
    if shard:
        print(f"once every shard is done: python -m {__package__.split('.')[0]} merge --output {output}")
    return target


def _check_paths(source: Path, output: Path, target: Path) -> None:
    """Refuse, before any work, an input that is not there and an output that cannot be written."""
    if not source.exists():
        input_items(source)  # raises the message that says what --input takes
    if target.is_dir():
        raise ConfigError(
            f"--output {str(output)!r} is a folder: give a file name, e.g. {str(output / 'scores.csv')!r}."
        )
    if source.is_file() and target.resolve() == source.resolve():
        raise ConfigError(f"--output {str(output)!r} is the --input CSV itself: choose another file name.")
    folder = next(p for p in (target.parent.absolute(), *target.parent.absolute().parents) if p.exists())
    if not folder.is_dir():
        raise ConfigError(f"--output {str(output)!r}: {str(folder)!r} is a file, not a folder; choose another path.")
    if not os.access(folder, os.W_OK):
        raise ConfigError(
            f"--output {str(output)!r}: {str(folder)!r} is not writable; choose a folder you can write to."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--output {str(output)!r}: cannot make its folder ({error.strerror or error}); choose another path."
        ) from None


def _load(model_dir: str | Path, precision: str, device: str) -> tuple[ExportedModel, Path, str | None]:
    """The model, the ONNX file it runs and, for a registered one, its name and version."""
    from ..registry import resolve_model

    registered = None
    model_dir, info = resolve_model(model_dir)
    if info:
        print(f"scoring with {info['uri']}: version {info['version']} {info['aliases']}")
        registered = f"{info['name']} version {info['version']}"
    return load_model(model_dir, precision, device), Path(model_dir) / PRECISIONS[precision], registered


def _write_all(
    model: ExportedModel, items: Iterator[Item], partial: Path, total: int, options: ScoringOptions
) -> dict[str, int]:
    """Every item's row appended to ``partial`` (after the rows kept from an interrupted run), a batch at a time."""
    header = columns(model.classes)
    kept = kept_rows(partial, header) if options.resume else None
    counts = {"scored": 0, "errors": 0}
    if kept is None:
        if partial.exists() and not options.resume:
            print(f"starting over: replacing {partial} (--resume would have gone on from it)", file=sys.stderr)
        with partial.open("w", newline="", **ENCODING) as f:
            csv.writer(f, lineterminator="\n").writerow(header)
        kept = 0
    else:
        counts["errors"] = skip_kept(items, partial, kept)
        counts["scored"] = kept - counts["errors"]
    workers, batch_size = options.workers or available_cores(), options.batch_size
    bar = tqdm(total=total, initial=kept, unit="image", file=sys.stderr, disable=not options.progress, mininterval=1)
    decode_one = partial_function(decode, resolution=model.resolution, resize=model.resize)
    try:
        with bar, partial.open("a", newline="", **ENCODING) as f:
            writer = csv.writer(f, lineterminator="\n")
            for batch in batches(decoded(items, decode_one, workers, batch_size + 2 * workers), batch_size):
                rows = rows_of(model, batch)
                writer.writerows(rows)
                f.flush()  # a killed run keeps every finished batch for --resume
                errors = sum(1 for row in rows if row[-1])
                counts["errors"] += errors
                counts["scored"] += len(rows) - errors
                bar.update(len(rows))
            os.fsync(f.fileno())
    except BaseException:
        done = counts["scored"] + counts["errors"]
        print(f"stopped after {done} rows, kept in {partial}: run again with --resume to go on.", file=sys.stderr)
        raise
    return counts


def kept_rows(partial: Path, header: list[str]) -> int | None:
    """The number of complete rows an interrupted run left in ``partial`` (a half-written last row is cut off),
    or None when there is nothing to go on from."""
    if not partial.is_file():
        return None
    end, count, complete = 0, 0, {"at": 0, "whole": True}

    def lines():  # decoded lines, keeping count of the bytes read and whether the last ends its line
        with partial.open("rb") as f:
            for raw in f:
                complete["at"] += len(raw)
                complete["whole"] = raw.endswith(b"\n")
                yield raw.decode(**ENCODING)

    source = lines()
    reader = csv.reader(source)
    try:
        first = next(reader, None)
        if first is None or not complete["whole"]:
            return None
        if first != header:
            raise DataError(
                f"--resume: {partial} has the columns {first}, not {header}: it was written with another model. "
                "Run again without --resume to start over."
            )
        end = complete["at"]
        for row in reader:
            if len(row) != len(header) or not complete["whole"]:
                break
            count, end = count + 1, complete["at"]
    except csv.Error:
        pass  # a half-written quoted value at the end: keep what came before
    finally:
        source.close()
    os.truncate(partial, end)
    return count


def skip_kept(items: Iterator[Item], partial: Path, kept: int) -> int:
    """Take the first ``kept`` inputs off ``items``, checking the partial rows are theirs; returns how many of
    those rows hold an error."""
    errors = 0
    with partial.open(newline="", **ENCODING) as f:
        rows = csv.reader(f)
        next(rows)
        for position, row in enumerate(islice(rows, kept), start=1):
            item = next(items, None)
            if item is None or item.path != row[0]:
                now = "has fewer inputs" if item is None else f"has {item.path!r} there"
                raise DataError(
                    f"--resume: row {position} of {partial} is for {row[0]!r} but the input now {now}: "
                    "the input changed. Run again without --resume to start over."
                )
            errors += bool(row[-1])
    return errors
