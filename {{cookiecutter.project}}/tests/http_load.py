"""A load generator for the service, run as its own process so its threads never slow the process measuring.

    python tests/http_load.py URL IMAGE --requests 2000 --clients 16 [--images-per-request 1]

Each client keeps one connection and posts the image until the requests are used up; prints one JSON line:
requests, failures (status codes), seconds, requests_per_s, and p50/p99 latency in ms.
"""

import argparse
import json
import threading
import time

import numpy as np
import requests


def load(url: str, image: bytes, total: int, clients: int, per_request: int = 1) -> dict:
    latencies, failures, lock = [], [], threading.Lock()
    remaining = iter(range(total))
    files = [("files", (f"image-{i}.png", image)) for i in range(per_request)]

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                started = time.perf_counter()
                try:
                    status = session.post(f"{url}/predict", files=files, timeout=120).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "requests": total,
        "clients": clients,
        "failures": failures,
        "seconds": round(seconds, 3),
        "requests_per_s": round(total / seconds, 2),
        "images_per_s": round(total * per_request / seconds, 2),
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
    args = parser.parse_args()
    with open(args.image, "rb") as f:
        image = f.read()
    print(json.dumps(load(args.url, image, args.requests, args.clients, args.images_per_request)))
