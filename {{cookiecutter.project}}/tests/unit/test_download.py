"""URL lists against a real HTTP server on 127.0.0.1: good, missing, flaky, slow and non-image URLs."""

import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest
from helpers.images import png
from helpers.servers import serving

from {{ cookiecutter.package }}.acquisition import sources
from {{ cookiecutter.package }}.acquisition.download import INDEX, download_all
from {{ cookiecutter.package }}.acquisition.manifest import check_rows


class Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    images = {"/red.png": png("red"), "/blue": png("blue"), "/red-again.png": png("red")}

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.hits[self.path] += 1
        if self.path in self.images:
            self.reply(200, self.images[self.path], "image/png")
        elif self.path == "/flaky.png" and Handler.hits[self.path] == 1:
            self.reply(503, b"busy", "text/plain")
        elif self.path == "/flaky.png":
            self.reply(200, png("green"), "image/png")
        elif self.path == "/slow.png":
            time.sleep(1.5)
            self.reply(200, png("black"), "image/png")
        elif self.path == "/page.jpg":
            self.reply(200, b"<html>moved</html>", "text/html")
        else:
            self.reply(404, b"not found", "text/plain")

    def reply(self, status, body, content_type):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.hits = Counter()
    with serving(Handler) as url:
        yield url


def test_downloads_skip_broken_urls_and_never_fetch_twice(tmp_path, server):
    entries = [
        (f"{server}/red.png", "warm"),
        (f"{server}/blue", "cool"),
        (f"{server}/flaky.png", "cool"),
        (f"{server}/missing.png", "warm"),
        (f"{server}/slow.png", "cool"),
        (f"{server}/page.jpg", "warm"),
        ("http://127.0.0.1:1/closed.png", "warm"),
    ]
    rows = {r["origin"].rsplit("/", 1)[-1]: r for r in download_all(entries, tmp_path, workers=4, timeout=0.5)}
    assert Handler.hits["/flaky.png"] == 2, "a 503 is retried"
    assert rows["missing.png"]["reason"] == "download failed: HTTP 404 (1 attempt)"
    assert rows["slow.png"]["reason"].startswith("download failed: timed out after 0.5 s")
    assert rows["closed.png"]["reason"].startswith("download failed: could not connect")
    assert rows["blue"]["path"].endswith(".png"), "extension from the Content-Type"
    stored = {r["origin"].rsplit("/", 1)[-1]: tmp_path / r["path"] for r in rows.values() if "status" not in r}
    assert set(stored) == {"red.png", "blue", "flaky.png", "page.jpg"}
    assert stored["red.png"].read_bytes() == Handler.images["/red.png"]
    checked = {r["origin"].rsplit("/", 1)[-1]: r for r in check_rows(list(rows.values()), workers=1)}
    assert checked["page.jpg"]["status"] == "excluded" and checked["page.jpg"]["reason"].startswith("not an image")
    assert checked["red.png"]["status"] == "ok" and checked["missing.png"]["status"] == "excluded"

    before = Counter(Handler.hits)
    again = download_all(entries + [(f"{server}/red-again.png", "warm")], tmp_path, workers=4, timeout=0.5)
    asked_again = Handler.hits - before
    assert asked_again == {"/red-again.png": 1, "/missing.png": 1, "/slow.png": 3}, "only new and failed URLs"
    same = [r["path"] for r in again if r["origin"].endswith(("/red.png", "/red-again.png"))]
    assert len(set(same)) == 1, "the same content is stored once"
    assert (tmp_path / INDEX).is_file() and not list(tmp_path.rglob("*.part"))


def test_a_url_list_file_is_a_source_like_any_other(tmp_path, server):
    url_list = tmp_path / "urls.tsv"
    url_list.write_text(f"url\tlabel\n{server}/red.png\twarm\n{server}/gone.png\twarm\n{server}/blue\tcool\n")
    source = sources.detect(url_list)
    rows = list(check_rows(sources.rows(source, tmp_path / "downloads"), workers=1))
    assert [(r["label"], r["status"]) for r in rows] == [("warm", "ok"), ("warm", "excluded"), ("cool", "ok")]
    assert rows[0]["path"].startswith(str(tmp_path / "downloads" / "warm"))
