"""A load generator for the service, run as its own process so its threads never slow the process measuring.

    python tests/helpers/http_load.py URL IMAGE --requests 2000 --clients 16 [--images-per-request 1]

Each client keeps one connection and posts the image until the requests are used up; prints one JSON line:
requests, failures (status codes), seconds, requests_per_s, and p50/p99 latency in ms.
"""

import argparse
import http.client
import json
import os
import threading
import time
import uuid
from urllib.parse import urlsplit

import numpy as np


def multipart(image: bytes, count: int) -> tuple[bytes, str]:
    """One request body with ``count`` copies of the image in the field ``files``, built once."""
    boundary = uuid.uuid4().hex
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="image.png"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = b"".join(part + image + b"\r\n" for _ in range(count)) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load(url: str, image: bytes, total: int, clients: int, per_request: int = 1) -> dict:
    """``total`` POST /predict from ``clients`` threads, each on one kept-alive connection. Plain http.client
    with a body built once: the generator's own CPU, on the same cores as the service, stays small."""
    body, content_type = multipart(image, per_request)
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    host, port = urlsplit(url).hostname, urlsplit(url).port
    latencies, failures, lock = [], [], threading.Lock()
    remaining = iter(range(total))

    def client() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            with lock:
                if next(remaining, None) is None:
                    break
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                connection.close()  # reconnects on the next request
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures.append(status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "requests": total,
        "completed": len(latencies),
        "clients": clients,
        "failures": failures,
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(latencies) / seconds, 2),
        "images_per_s": round(len(latencies) * per_request / seconds, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("image")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority (the one measuring wins)")
    args = parser.parse_args()
    os.nice(args.nice)
    with open(args.image, "rb") as f:
        image = f.read()
    print(json.dumps(load(args.url, image, args.requests, args.clients, args.images_per_request)))
