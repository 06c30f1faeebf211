"""Download a URL list once: parallel, with timeouts and retries, content-addressed.

Each file is stored as ``<dest>/<label>/<sha256>.<ext>``; ``<dest>/downloads.csv``
remembers which URL gave which file, so a re-run downloads nothing twice. A URL that
fails is reported (and becomes an excluded manifest row), never fatal. A label that is
not a valid class name (``core.class_names``) is: nothing is downloaded.
"""

import csv
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm.auto import tqdm

from ..core import class_names
from ..core.images import IMAGE_EXTENSIONS

INDEX = "downloads.csv"
MAX_BYTES = 100 * 2**20  # a single image larger than this is refused
CONTENT_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
                 "image/tiff": ".tif", "image/webp": ".webp"}  # fmt: skip


class DownloadError(RuntimeError):
    pass


def fetch(url: str, timeout: float, retries: int) -> tuple[bytes, str]:
    """Body and content type. Timeouts, lost connections and 5xx answers are retried with
    backoff; other HTTP errors are final (asking again would not change them)."""
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(0.2 * 2 ** (attempt - 1))
        try:
            with requests.get(url, timeout=timeout, stream=True) as response:
                if response.status_code == 200:
                    return _read(response), response.headers.get("Content-Type", "").split(";")[0].strip()
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    break
        except requests.Timeout:
            problem = f"timed out after {timeout:g} s"
        except requests.ConnectionError:
            problem = "could not connect"
        except requests.RequestException as error:
            problem = f"invalid URL: {error}"
            break
    raise DownloadError(f"{problem} ({attempt + 1} attempt{'s' if attempt else ''})")


def _read(response: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(1 << 16):
        size += len(chunk)
        if size > MAX_BYTES:
            raise DownloadError(f"larger than {MAX_BYTES // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def extension(url: str, content_type: str) -> str:
    suffix = Path(urlparse(url).path).suffix.lower()
    return suffix if suffix in IMAGE_EXTENSIONS else CONTENT_TYPES.get(content_type, ".jpg")


def read_index(dest: Path) -> dict[str, str]:
    path = dest / INDEX
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["url"]: row["file"] for row in csv.DictReader(f) if _stored(dest, row["file"])}


def _stored(dest: Path, relative: str) -> bool:
    """An index entry counts only for a file inside ``dest``: an edited index must not lead a row elsewhere."""
    return (dest / relative).is_file() and class_names.is_inside(dest, dest / relative)


def download_one(url: str, label: str, dest: Path, timeout: float, retries: int) -> str:
    """Store one URL's body under its content hash; returns the path relative to ``dest``."""
    folder = class_names.inside(dest, label)  # before fetching: a label leading out of dest costs no download
    body, content_type = fetch(url, timeout, retries)
    target = folder / f"{hashlib.sha256(body).hexdigest()}{extension(url, content_type)}"
    relative = target.relative_to(dest).as_posix()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(body)
        partial.replace(target)  # atomic: an interrupted run leaves no half file under the real name
    return relative


def download_all(
    entries: list[tuple[str, str]], dest: Path, workers: int = 8, timeout: float = 10.0, retries: int = 2
) -> list[dict]:
    """One manifest row per entry: downloaded (path set) or failed (status excluded, reason)."""
    for number, (url, label) in enumerate(entries, start=1):  # all labels checked before anything is written
        class_names.check(label, f"download entry {number} ({url!r})", "give it a plain class name")
    dest.mkdir(parents=True, exist_ok=True)
    index = read_index(dest)
    todo = [(url, label) for url, label in dict.fromkeys(entries) if url not in index]

    def attempt(entry: tuple[str, str]) -> tuple[str, str, str]:
        url, label = entry
        try:
            return url, download_one(url, label, dest, timeout, retries), ""
        except DownloadError as error:
            return url, "", str(error)

    failures = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for url, relative, error in tqdm(pool.map(attempt, todo), total=len(todo), desc="downloading"):
            if relative:
                index[url] = relative
            else:
                failures[url] = error
    _write_index(dest, index)
    rows = []
    for url, label in entries:
        row = {"label": label, "given_split": "", "origin": url}
        if url in index:
            rows.append({**row, "path": str(dest / index[url])})
        else:
            rows.append({**row, "path": url, "status": "excluded", "reason": f"download failed: {failures[url]}"})
    return rows


def _write_index(dest: Path, index: dict[str, str]) -> None:
    partial = dest / (INDEX + ".part")
    with partial.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "file"])
        writer.writerows(sorted(index.items()))
    partial.replace(dest / INDEX)
