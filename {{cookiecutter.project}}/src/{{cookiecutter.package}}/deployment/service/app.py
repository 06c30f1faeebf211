"""REST service for an exported model: a page at /, POST /predict (one or more images), /health, /ready, /metrics.

Built to stay up whatever it is sent: bodies, images and the queue are bounded (see ServiceSettings); images are
decoded on worker threads and the model runs on its own thread with micro-batching, so the event loop only moves
bytes; every refusal is a 4xx (or a 503 with Retry-After when busy) with a message that names the file and the fix.
"""

import asyncio
import io
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ...core.images import ImageRefused, PixelBudget, read_checked
from ..predict import ExportedModel, load_model, predict
from .batcher import MicroBatcher, QueueFull
from .metrics import ServiceMetrics
from .middleware import ApiKey, BodyLimit, RequestLog
from .protocol import with_header_timeout
from .settings import ServiceSettings

log = logging.getLogger("service")
RETRY_AFTER_S = 1


def create_app(
    model_dir: str | Path,
    registered: dict[str, object] | None = None,
    settings: ServiceSettings | None = None,
    precision: str = "fp32",
    device: str = "cpu",
) -> FastAPI:
    """The service for an exported model folder; ``registered`` says which registry version it is, if any."""
    service = Service.start(load_model(model_dir, precision, device), registered or {}, settings or ServiceSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        log.info(json.dumps({"event": "ready", **service.identity}))
        yield
        await service.batcher.stop()  # after uvicorn drained the requests in flight (or shutdown_grace_s ran out)
        service.decoders.pool.shutdown(wait=False, cancel_futures=True)
        log.info(json.dumps({"event": "stopped"}))

    version = str(service.model.metadata.get("version", "0.1.0"))
    app = FastAPI(title="Image classifier", version=version, lifespan=lifespan)
    _add_middleware(app, service)
    _add_status_routes(app, service)
    _add_predict_route(app, service)
    return app


@dataclass(frozen=True)
class Service:
    """What every route shares: the model, its settings, the metrics, the batcher and the decoding threads."""

    model: ExportedModel
    registered: dict[str, object]
    settings: ServiceSettings
    metrics: ServiceMetrics
    batcher: MicroBatcher
    decoders: "Decoders"
    identity: dict[str, object]

    @classmethod
    def start(cls, model: ExportedModel, registered: dict, settings: ServiceSettings) -> "Service":
        metrics = ServiceMetrics()
        batcher = MicroBatcher(
            lambda batch: predict(model, batch),
            settings.max_batch,
            settings.max_wait_ms / 1000,
            settings.max_queue,
            metrics.batch,
        )
        decoders = Decoders(ThreadPoolExecutor(settings.decode_workers, "decode"), PixelBudget(settings.max_pixels))
        return cls(model, registered, settings, metrics, batcher, decoders, _identity(model, registered))


def _add_middleware(app: FastAPI, service: Service) -> None:
    settings = service.settings
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.read_timeout_s,
        max_uploads=settings.max_uploads,
        min_rate=settings.min_upload_kb_s * 1024,
    )
    app.add_middleware(ApiKey, key=settings.api_key, paths=("/predict", "/metrics"))
    app.add_middleware(RequestLog, metrics=service.metrics)  # outermost: every answer, refusals included, gets an id

    @app.exception_handler(QueueFull)
    async def busy(request: Request, error: QueueFull) -> JSONResponse:
        detail = f"The service is busy ({error}); retry in {RETRY_AFTER_S} s."
        return JSONResponse({"detail": detail}, 503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _add_status_routes(app: FastAPI, service: Service) -> None:
    """The page, liveness, readiness and Prometheus metrics."""
    model, batcher = service.model, service.batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(package_files(__package__).joinpath("page/index.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health() -> JSONResponse:
        """Liveness: answers while the process runs, whatever the load; 503 if the model's thread has stopped."""
        alive = batcher.running
        return JSONResponse(
            {
                "status": "ok" if alive else "the model is not running: restart the service",
                "classes": model.classes,
                "backbone": model.metadata.get("backbone"),
                "resolution": model.resolution,
                "resize": model.resize,  # how every image is made square before the model sees it
                "precision": model.precision,
                "model": {**service.identity, "uri": service.registered.get("uri")},  # which model and version answers
                "api_key_required": bool(service.settings.api_key),
            },
            200 if alive else 503,
        )

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: the model is loaded and the queue has room."""
        room = batcher.running and batcher.waiting < service.settings.max_queue
        return JSONResponse({"ready": room, "waiting": batcher.waiting}, 200 if room else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        service.metrics.queue.set(batcher.waiting)
        return Response(service.metrics.render(), media_type=service.metrics.content_type)


def _add_predict_route(app: FastAPI, service: Service) -> None:
    model, settings, batcher, metrics = service.model, service.settings, service.batcher, service.metrics

    @app.post("/predict")
    async def predict_images(
        request: Request, files: list[UploadFile] | None = File(None), file: UploadFile | None = File(None)
    ) -> dict[str, object]:
        """Labels and class probabilities for one or more images (multipart field ``files``, or ``file``)."""
        uploads = ([file] if file else []) + list(files or [])
        _check_count(len(uploads), settings.max_images)
        batcher.coming += 1  # the batcher may wait a few milliseconds for these images
        try:
            images = await asyncio.gather(*(_decode(u, model, settings, service.decoders) for u in uploads))
        finally:
            batcher.coming -= 1
        refused = [(upload, reason) for upload, reason in zip(uploads, images) if isinstance(reason, str)]
        metrics.images.labels("refused").inc(len(refused))
        if refused:
            raise HTTPException(400, "; ".join(f"{_name(u)} is not usable: {reason}" for u, reason in refused))
        metrics.images.labels("ok").inc(len(images))
        probs = await batcher.submit(np.stack(images))
        predictions = [
            {
                "filename": upload.filename or "",
                "label": label,
                "probabilities": dict(zip(model.classes, map(float, row))),
            }
            for upload, label, row in zip(uploads, model.labels(probs), probs)
        ]
        return {"model": service.identity, "predictions": predictions, "request_id": request.state.request_id}


@dataclass(frozen=True)
class Decoders:
    """Threads that decode uploads, and the pixels they may decode at once (memory stays bounded)."""

    pool: ThreadPoolExecutor
    budget: PixelBudget


def _identity(model: ExportedModel, registered: dict) -> dict[str, object]:
    """Which model answered: in every prediction, so a client can tell versions apart. Served from the registry,
    the registry says; served as a folder, the registration export recorded in model.json (aliases move, so none)."""
    known = registered or model.metadata.get("registered") or {}
    return {
        "name": known.get("name") or model.metadata.get("project", ""),
        "version": known.get("version"),
        "aliases": registered.get("aliases", []),
        "precision": model.precision,
        "backbone": model.metadata.get("backbone"),
    }


def _check_count(count: int, limit: int) -> None:
    if count == 0:
        raise HTTPException(422, "No image received: send one or more files in the multipart field 'files'.")
    if count > limit:
        raise HTTPException(413, f"{count} images in one request; send at most {limit} per request.")


def _name(upload: UploadFile) -> str:
    return repr((upload.filename or "unnamed")[:120])


async def _decode(upload: UploadFile, model: ExportedModel, settings: ServiceSettings, decoders) -> np.ndarray | str:
    """The image as float32 CHW ready for the model, or the reason it cannot be used.

    The decode time limit starts when a decoder thread takes the image: waiting for a free one is not its fault."""
    data = await upload.read()
    if not data:
        return "the file is empty (0 bytes)"
    loop, started = asyncio.get_running_loop(), asyncio.Event()

    def decode() -> np.ndarray:
        loop.call_soon_threadsafe(started.set)
        image = read_checked(
            io.BytesIO(data), model.resolution, model.resize, settings.max_pixels, settings.max_side, decoders.budget
        )
        return image.transpose(2, 0, 1).astype(np.float32)

    work = loop.run_in_executor(decoders.pool, decode)
    await started.wait()
    try:
        return await asyncio.wait_for(work, settings.decode_timeout_s)
    except ImageRefused as error:
        return str(error)
    except asyncio.TimeoutError:
        return f"took longer than {settings.decode_timeout_s:g} s to decode; send a smaller image"


def configure_logging() -> None:
    """One JSON object a line on stderr for the service's own events (uvicorn's access log is replaced by them)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def run(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServiceSettings | None = None,
    precision: str = "fp32",
    device: str = "cpu",
) -> None:
    """Serve an exported model folder, or a registered version (``models:/<name>@<alias>``), until SIGTERM/SIGINT."""
    import uvicorn

    from ..registry import resolve_model

    settings = settings or ServiceSettings()
    model, registered = resolve_model(model)
    if registered:
        print(f"serving {registered['uri']}: version {registered['version']} {registered['aliases']}", flush=True)
    configure_logging()
    sys.setswitchinterval(0.001)  # hand the GIL back to the event loop sooner when decoder threads hold it
    uvicorn.run(
        create_app(model, registered, settings, precision, device),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        http=with_header_timeout(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
