"""REST service for an exported model: GET /health, POST /predict (an image file)."""

import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import UnidentifiedImageError

from .predict import load_model, predict_image


def create_app(model_dir: str | Path, registered: dict[str, object] | None = None) -> FastAPI:
    """The service for an exported model folder; ``registered`` says which registry version it is, if any."""
    model = load_model(model_dir)
    app = FastAPI(title="Image classifier", version=str(model.metadata.get("version", "0.1.0")))

    @app.get("/health")
    def health() -> dict[str, object]:
        return {
            "status": "ok",
            "classes": model.classes,
            "backbone": model.metadata.get("backbone"),
            "resolution": model.resolution,
            "resize": model.resize,  # how every image is made square before the model sees it
            "registered": registered or {},  # name, version and aliases when served from the registry
        }

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)) -> dict[str, object]:
        content = await file.read()
        try:
            return predict_image(model, io.BytesIO(content))
        except (UnidentifiedImageError, OSError) as error:
            raise HTTPException(status_code=400, detail=f"{file.filename!r} is not a readable image: {error}") from None

    return app


def run(model: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve an exported model folder, or a registered version (``models:/<name>@<alias>``)."""
    import uvicorn

    from .registry import fetch, is_registry_uri

    registered = {}
    if is_registry_uri(model):
        model, registered = fetch(str(model))
        print(f"serving {registered['uri']}: version {registered['version']} {registered['aliases']}", flush=True)
    uvicorn.run(create_app(model, registered), host=host, port=port, log_level="info")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def running_service(model_dir: str | Path, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Start ``python -m <package> serve`` on 127.0.0.1, yield its URL, stop it on exit."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        __package__.partition(".")[0],
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, url, timeout)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_healthy(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The service exited with code {process.returncode}:\n{process.stdout.read()}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise TimeoutError(f"The service at {url} did not answer /health within {timeout:.0f} s.")
