"""Real servers on 127.0.0.1 for the tests: an MLflow tracking server, and any ``http.server`` handler (a web
server of URLs to download), started for a test and stopped after it."""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store and artifacts under ``root``, artifacts served by the
    server); yields its URL once it answers /health, stops it on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{root / 'store.db'}", "--artifacts-destination", str(root / "art")]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=5).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still starting
                time.sleep(0.5)
            assert server.poll() is None, (root / "server.log").read_text()[-3000:]
        else:
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` behind a real HTTP server on 127.0.0.1, in a thread; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
