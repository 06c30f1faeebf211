"""One rule for class names, in every source and the label review; nothing built from a name leaves its folder.

Downloads run against a real HTTP server on 127.0.0.1 that counts its requests: a refused list must cost none."""

import os
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest
from helpers.images import png
from helpers.servers import serving
from PIL import Image

from {{ cookiecutter.package }}.acquisition import sources
from {{ cookiecutter.package }}.acquisition.download import INDEX, download_all, download_one, read_index
from {{ cookiecutter.package }}.acquisition.review import apply_review, read_review
from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core import class_names
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.errors import DataError
from {{ cookiecutter.package }}.core.run_folder import RunFolder

# A bad label of each kind; "{outside}" is replaced by an absolute path under the test's own folder.
BAD_LABELS = {
    "parent": "../x",
    "far parent": "../../../somewhere",
    "absolute": "{outside}",
    "backslash": "..\\x",
    "bell": "bad\x07name",
    "escape": "red\x1b[0m",
    "nul": "a\x00b",
}


class Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.hits[self.path] += 1
        body = png("red")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.hits = Counter()
    with serving(Handler) as url:
        yield url


@pytest.fixture(params=list(BAD_LABELS))
def bad_label(request, tmp_path) -> str:
    return BAD_LABELS[request.param].format(outside=tmp_path / "outside" / "x")


def everything_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize(
    "name", ["cat", "Class A", "große Streifen ñ", "日本", "v1.2", "a..b", ".5", "x" * 100, "no_defect-2"]
)
def test_plain_names_pass(name):
    assert class_names.problem(name) == ""
    assert class_names.check(name, "here", "fix it") == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (" cat", "starts or ends with a space"),
        ("cat ", "starts or ends with a space"),
        (".", "folder reference"),
        ("..", "folder reference"),
        ("../x", "path separator"),
        ("/tmp/x", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "control character"),
        ("a\tb", "control character"),
        ("line\nbreak", "control character"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),
        ("a\u2028b", "control character"),
        ("undecodable\udcff", "control character"),
        ("x" * 101, "longer than 100"),
        ("日" * 70, "longer than 100"),  # 70 characters, 210 bytes
    ],
)
def test_bad_names_are_refused_with_the_place_the_value_and_the_fix(name, reason):
    assert reason in class_names.problem(name)
    with pytest.raises(DataError) as error:
        class_names.check(name, "labels.csv line 7", "write a plain class name in the label column")
    message = str(error.value)
    assert message.startswith("labels.csv line 7: class name ") and "label column" in message
    assert "\n" not in message and repr(name) in message


def test_a_url_list_with_a_bad_label_is_refused_before_any_download(tmp_path, server, bad_label):
    url_list = tmp_path / "urls.csv"
    url_list.write_text(f"url,label\n{server}/a.png,cat\n{server}/b.png,{bad_label}\n")
    before = everything_under(tmp_path)
    with pytest.raises(DataError, match=r"urls\.csv line 3: class name ") as error:
        sources.rows(sources.detect(url_list), tmp_path / "data" / "downloads")
    assert repr(bad_label) in str(error.value)
    assert not Handler.hits, "nothing is downloaded"
    assert everything_under(tmp_path) == before, "nothing is written, inside the download folder or out"


def test_a_tsv_url_list_names_the_line_too(tmp_path, server):
    url_list = tmp_path / "urls.tsv"
    url_list.write_text(f"{server}/a.png\tcat\n\n{server}/b.png\t..\n")
    with pytest.raises(DataError, match=r"urls\.tsv line 3: class name '\.\.' is a folder reference"):
        sources.url_entries(url_list)
    assert not Handler.hits


def test_download_all_checks_every_label_itself(tmp_path, server, bad_label):
    entries = [(f"{server}/a.png", "cat"), (f"{server}/b.png", bad_label)]
    with pytest.raises(DataError, match="download entry 2"):
        download_all(entries, tmp_path / "downloads", workers=1)
    assert not Handler.hits and everything_under(tmp_path) == set()


def test_download_one_never_writes_outside_its_folder(tmp_path, server):
    dest = tmp_path / "downloads"
    dest.mkdir()
    with pytest.raises(DataError, match="leads outside"):
        download_one(f"{server}/a.png", "../escaped", dest, timeout=2, retries=0)
    (tmp_path / "elsewhere").mkdir()
    (dest / "linked").symlink_to(tmp_path / "elsewhere")  # a valid name whose folder is a link out
    with pytest.raises(DataError, match="leads outside"):
        download_one(f"{server}/a.png", "linked", dest, timeout=2, retries=0)
    assert not Handler.hits and not (tmp_path / "escaped").exists() and not any((tmp_path / "elsewhere").iterdir())
    assert download_one(f"{server}/a.png", "cat", dest, timeout=2, retries=0).startswith("cat/")


def test_an_edited_download_index_cannot_point_outside(tmp_path):
    dest = tmp_path / "downloads"
    (dest / "cat").mkdir(parents=True)
    (dest / "cat" / "ok.png").write_bytes(png("red"))
    (tmp_path / "secret.png").write_bytes(png("blue"))
    (dest / INDEX).write_text("url,file\nhttp://a/ok.png,cat/ok.png\nhttp://a/secret.png,../secret.png\n")
    assert read_index(dest) == {"http://a/ok.png": "cat/ok.png"}


def test_a_csv_manifest_with_a_bad_label_is_refused_before_any_row(tmp_path, bad_label):
    (tmp_path / "a.png").write_bytes(png("red"))
    manifest = tmp_path / "labels.csv"
    manifest.write_text(f"path,label\na.png,cat\n\na.png,{bad_label}\n")
    rows = sources.csv_rows(manifest)
    with pytest.raises(DataError, match=r"labels\.csv line 4: class name ") as error:
        next(rows)  # not even the good first line comes out: the whole file is checked first
    assert repr(bad_label) in str(error.value) and "label column" in str(error.value)


@pytest.mark.parametrize("name", ["bad\x07name", " padded", "tab\tinside", "x" * 101])
@pytest.mark.parametrize("layout", ["plain", "split"])
def test_a_class_folder_with_a_bad_name_is_refused_before_any_row(tmp_path, name, layout):
    root = tmp_path / "train" if layout == "split" else tmp_path
    for label in ("cat", "dog", name):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / label / "img.png")
    with pytest.raises(DataError, match="rename the folder") as error:
        next(sources.folder_rows(tmp_path))
    assert f"class folder in {str(root)!r}: class name {name!r}" in str(error.value)


def test_an_undecodable_folder_name_is_refused(tmp_path):
    for label in (b"cat", b"dog", b"caf\xe9"):  # latin-1 bytes: not UTF-8, read back with a lone surrogate
        os.mkdir(os.path.join(os.fsencode(tmp_path), label))
    with pytest.raises(DataError, match=r"'caf\\udce9' holds a control character"):
        next(sources.folder_rows(tmp_path))


def test_a_review_relabel_to_a_bad_name_is_refused(tmp_path, bad_label):
    review_file = tmp_path / "labels_review.csv"
    review_file.write_text(
        f"path,action,new_label,note\ncat/1.png,relabel,dog,\n\ncat/2.png,relabel,{bad_label},\ncat/3.png,exclude,,\n"
    )
    with pytest.raises(DataError, match=r"labels_review\.csv line 4: class name ") as error:
        read_review(review_file)
    assert repr(bad_label.strip()) in str(error.value) and "new_label column" in str(error.value)


def test_review_lines_are_counted_as_in_the_file(tmp_path):
    review_file = tmp_path / "labels_review.csv"
    review_file.write_text("path,action,new_label,note\n\ncat/1.png,exclude,,\n\n\ncat/missing.png,exclude,,\n")
    manifest = pd.DataFrame({"path": [str(tmp_path / "cat/1.png")], "label": "cat", "status": "ok", "reason": ""})
    with pytest.raises(DataError, match=r"line 6: 'cat/missing.png' is not in the data"):
        apply_review(manifest, read_review(review_file), tmp_path, str(review_file))


def test_acquire_refuses_a_url_list_before_downloading_or_writing_anything(tmp_path, server):
    project = tmp_path / "project"
    url_list = project / "data" / "urls.csv"
    url_list.parent.mkdir(parents=True)
    rows = "".join(f"{server}/{colour}.png,{colour}\n" for colour in ("red", "blue"))
    url_list.write_text(f"url,label\n{rows}{server}/evil.png,../../../somewhere\n")
    run = RunFolder.open(project / "runs" / "r1")
    before = everything_under(tmp_path)
    cfg = DataConfig(
        data_dir=str(url_list),
        download_dir=str(project / "data" / "downloads"),
        labels_review=str(project / "data" / "labels_review.csv"),
        workers=1,
    )
    with pytest.raises(DataError, match=r"urls\.csv line 4: class name '\.\./\.\./\.\./somewhere'"):
        acquire(cfg, run)
    assert not Handler.hits
    assert not (project / "data" / "downloads").exists() and not (tmp_path / "somewhere").exists()
    assert {p for p in everything_under(tmp_path) - before if not p.is_relative_to(run.root)} == set()
