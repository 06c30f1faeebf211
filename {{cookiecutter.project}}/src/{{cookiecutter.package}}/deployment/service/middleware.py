"""ASGI layers in front of every route, outermost first: a request id with a JSON log line and metrics for each
request; the API key; a body limit that reads the whole body (at most max bytes, within a time limit) before
any parsing."""

import asyncio
import hmac
import json
import logging
import re
import time
import uuid

from .metrics import ServiceMetrics

log = logging.getLogger("service")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a caller's X-Request-ID is kept only if it is this tame


async def send_json(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestLog:
    """Gives each request an id (X-Request-ID in and out), then logs one JSON line and counts it in the metrics."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = header(scope, b"x-request-id") or ""
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.request(scope["path"], status, seconds)
            line = {"request_id": request_id, "method": scope["method"], "path": scope["path"][:200]}
            line.update(status=status, ms=round(seconds * 1000, 1), client=(scope.get("client") or ["?"])[0])
            log.info(json.dumps(line))


SLOW_GRACE_S = 2.0  # every body may take this long, whatever its rate


class TooSlow(Exception):
    """The body arrives too slowly to be worth an upload slot."""


class ApiKey:
    """With a key set, ``paths`` answer 401 unless the X-API-Key header holds it: checked before any body is read,
    so a client without the key takes neither an upload slot nor parsing work."""

    def __init__(self, app, key: str, paths: tuple[str, ...]):
        self.app, self.key, self.paths = app, key.encode(), paths

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.key and scope["path"] in self.paths:
            given = (header(scope, b"x-api-key") or "").encode("latin-1")
            if not hmac.compare_digest(given, self.key):
                return await send_json(send, 401, "Missing or wrong API key: send it in the X-API-Key header.")
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses a body over ``max_bytes`` (413) or slower than ``timeout_s`` (408) before the app parses it.

    The body is read here whole, so memory per request is bounded by the limit, and the app sees it replayed.
    At most ``max_uploads`` requests with a body are handled at once; the others wait their turn (unread, in the
    kernel's buffers) for up to ``timeout_s``, then get 503 with Retry-After: memory stays bounded under any load."""

    def __init__(self, app, max_bytes: int, timeout_s: float, max_uploads: int, min_rate: float):
        self.app, self.max_bytes, self.timeout_s, self.min_rate = app, max_bytes, timeout_s, min_rate
        self.uploads = asyncio.Semaphore(max_uploads)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await send_json(send, 413, self._too_large())
        try:
            await asyncio.wait_for(self.uploads.acquire(), self.timeout_s)
        except asyncio.TimeoutError:
            return await send_json(send, 503, "The service is busy; retry in 1 s.", [(b"retry-after", b"1")])
        try:
            await self._handle(scope, receive, send)
        finally:
            self.uploads.release()

    async def _handle(self, scope, receive, send):
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except asyncio.TimeoutError:
            return await send_json(send, 408, f"The request body did not arrive within {self.timeout_s:g} s.")
        except TooSlow:
            detail = f"The request body arrived slower than {self.min_rate / 1024:g} KB/s; send it at once."
            return await send_json(send, 408, detail)
        if body is None:
            return await send_json(send, 413, self._too_large())
        pending = [body]
        del body

        async def replay():
            if not pending:
                return await receive()  # after the body: wait for the client to disconnect, as ASGI expects
            return {"type": "http.request", "body": pending.pop(), "more_body": False}  # handed over, not kept

        await self.app(scope, replay, send)

    async def _read(self, receive) -> bytes | None:
        """The whole body; None past max_bytes; TooSlow when, after a grace period, it arrives slower than
        min_rate on average (a slow sender would otherwise hold an upload slot for the whole timeout)."""
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            due = started + max(SLOW_GRACE_S, (size + 1) / self.min_rate)  # when the next byte is late
            try:
                message = await asyncio.wait_for(receive(), max(0.0, due - loop.time()))
            except asyncio.TimeoutError:
                raise TooSlow from None
            if message["type"] == "http.disconnect":
                return b""
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            if not message.get("more_body"):
                return b"".join(chunks)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes / 1024 / 1024:g} MB; send fewer or smaller images."
