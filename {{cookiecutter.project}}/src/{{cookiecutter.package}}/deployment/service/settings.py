"""The service's limits and knobs, in one place: every one has a safe default and a `serve` flag."""

from dataclasses import dataclass, fields

from ...core.choices import MAX_PIXELS, MAX_SIDE
from ...core.cpu import available_cores
from ...core.errors import ConfigError


@dataclass(frozen=True)
class ServiceSettings:
    # What one request may carry: the body is refused (413) past max_body_mb before it is parsed.
    max_body_mb: float = 16.0
    max_uploads: int = 16  # requests holding a body at once (memory: about 2 x max_uploads x max_body_mb); others wait
    max_images: int = 32  # images in one request
    max_pixels: int = MAX_PIXELS  # per image, read from its header before decoding (400 above)
    max_side: int = MAX_SIDE
    decode_timeout_s: float = 10.0
    read_timeout_s: float = 30.0  # the whole body must arrive within this (408), so slow senders cannot hold memory
    min_upload_kb_s: float = 32.0  # and, after 2 s, at least this fast on average (408): slots go to real uploads
    # Micro-batching: requests that arrive within max_wait_ms share one ONNX Runtime call of up to max_batch images.
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256  # images waiting for the model; more get 503 with Retry-After
    decode_threads: int = 0  # 0: one per core
    # Connections (idle keep-alive ones included): uvicorn answers 503 past max_connections, closes idle ones after
    # keep_alive_s, and on SIGTERM stops accepting and finishes the requests in flight for up to shutdown_grace_s.
    max_connections: int = 512
    keep_alive_s: float = 5.0
    header_timeout_s: float = 10.0  # a connection that has not sent a whole request head by then is closed
    shutdown_grace_s: float = 10.0
    api_key: str = ""  # when set, /predict and /metrics need it in the X-API-Key header (never logged)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name != "api_key" and not (value > 0 or (field.name == "decode_threads" and value == 0)):
                raise ConfigError(f"Service setting --{field.name.replace('_', '-')}={value} must be positive.")
        if self.max_images > self.max_queue:
            raise ConfigError(f"--max-images={self.max_images} must not exceed --max-queue={self.max_queue}.")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def decode_workers(self) -> int:
        return self.decode_threads or available_cores()


def setting_names() -> list[str]:
    """The settings a `serve` flag can set (the API key comes from an environment variable, never a flag)."""
    return [field.name for field in fields(ServiceSettings) if field.name != "api_key"]
