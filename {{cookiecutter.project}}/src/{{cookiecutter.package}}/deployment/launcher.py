"""Start the REST service (``python -m <package> serve``) as a child process on a free port, wait until it is
ready, and stop it: shared by the tests, the benchmarks and the web-service notebook (``steps.try_service``).
"""

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RunningService(str):
    """The URL of a service started by ``running_service``, with its process and what it printed."""

    process: subprocess.Popen
    output: IO[str]

    def log(self) -> str:
        self.output.flush()
        self.output.seek(0)
        return self.output.read()


@contextmanager
def running_service(
    model_dir: str | Path, port: int | None = None, timeout: float = 60.0, args: tuple[str, ...] = (), env=None
) -> Iterator[RunningService]:
    """Start ``python -m <package> serve`` on 127.0.0.1 (extra ``args`` for it), yield its URL, stop it on exit."""
    port = port or free_port()
    command = [sys.executable, "-m", __package__.partition(".")[0], "serve", "--model", str(model_dir)]
    command += ["--port", str(port), *args]
    with tempfile.TemporaryFile("w+") as output:  # a file, not a pipe: a full pipe would stall the service's logging
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, env=env)
        service = RunningService(f"http://127.0.0.1:{port}")
        service.process, service.output = process, output
        try:
            wait_until_ready(process, service, service.log, timeout)
            yield service
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_until_ready(process: subprocess.Popen, url: str, read_log: Callable[[], str], timeout: float) -> None:
    """Until the service at ``url`` answers /ready; what it printed (``read_log``) if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The service exited with code {process.returncode}:\n{read_log()[-5000:]}")
        try:
            if requests.get(f"{url}/ready", timeout=2).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the model
            pass
        time.sleep(0.3)
    raise TimeoutError(f"The service at {url} was not ready within {timeout:.0f} s:\n{read_log()[-5000:]}")
