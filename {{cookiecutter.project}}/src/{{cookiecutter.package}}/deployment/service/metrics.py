"""What /metrics exposes, in Prometheus' text format (prometheus_client), one registry per service."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENDPOINTS = ("/", "/health", "/ready", "/predict", "/metrics", "/docs", "/openapi.json")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "request_seconds", "Time to answer a request", ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.images = Counter("images", "Images received, by outcome", ["outcome"], registry=self.registry)
        self.batch_size = Histogram(
            "batch_images", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry
        )
        self.inference = Histogram(
            "inference_seconds", "Time of one model call", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.queue = Gauge("queue_images", "Images waiting for the model", registry=self.registry)

    def request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"  # fuzzed paths must not grow the label set
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
