"""The service over real HTTP on 127.0.0.1: answers, several images per request, the key, metrics, the queue."""

import asyncio
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient
from helpers.images import big_png
from helpers.predictions import predict_image

from {{ cookiecutter.package }}.deployment.launcher import running_service
from {{ cookiecutter.package }}.deployment.predict import load_model
from {{ cookiecutter.package }}.deployment.service import app as service_app
from {{ cookiecutter.package }}.deployment.service.batcher import MicroBatcher, QueueFull
from {{ cookiecutter.package }}.deployment.service.settings import ServiceSettings


def post(url: str, paths, field: str = "files", **kw) -> requests.Response:
    files = [(field, (p.name, p.read_bytes())) for p in paths]
    return requests.post(f"{url}/predict", files=files, timeout=60, **kw)


def test_service_answers_health_and_several_images_in_order(exported_model, tiny_images):
    images = sorted(tiny_images.rglob("*.png"))[:3] + sorted(tiny_images.rglob("*.jpg"))[:2]
    model = load_model(exported_model)
    with running_service(exported_model) as url:
        assert url.startswith("http://127.0.0.1:")
        health = requests.get(f"{url}/health", timeout=10).json()
        assert health["classes"] == ["horizontal", "vertical"] and health["api_key_required"] is False
        assert (health["resolution"], health["resize"], health["precision"]) == (32, "stretch", "fp32")
        assert requests.get(f"{url}/ready", timeout=10).json()["ready"] is True
        answer = post(url, images, headers={"X-Request-ID": "my-id-1"})
        single = post(url, images[:1], field="file").json()
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "my-id-1"
    body = answer.json()
    assert body["request_id"] == "my-id-1" and body["model"]["backbone"] == "efficientnet_lite0"
    assert [p["filename"] for p in body["predictions"]] == [p.name for p in images]
    for path, prediction in zip(images, body["predictions"]):  # each answer is that image's, in order
        expected = predict_image(model, path)
        assert prediction["label"] == expected["label"]
        assert np.allclose(
            list(prediction["probabilities"].values()), list(expected["probabilities"].values()), atol=1e-5
        )
    assert single["predictions"][0]["filename"] == images[0].name, "the field 'file' works too"
    try:
        requests.get(f"{url}/health", timeout=2)
        raise AssertionError("service still answering after the context closed")
    except requests.ConnectionError:
        pass


def test_bad_images_are_named_in_a_400_and_nothing_is_scored(exported_model, tiny_images, tmp_path):
    good = next(tiny_images.rglob("*.png"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    with running_service(exported_model) as url:
        answer = post(url, [good, tmp_path / "notes.txt", tmp_path / "empty.png"])
        nothing = requests.post(f"{url}/predict", timeout=10)
        too_many = post(url, [good] * 33)
    detail = answer.json()["detail"]
    assert answer.status_code == 400 and "'notes.txt' is not usable: not an image" in detail
    assert "'empty.png' is not usable: the file is empty" in detail and good.name not in detail
    assert nothing.status_code == 422 and "'files'" in nothing.json()["detail"]
    assert too_many.status_code == 413 and "at most 32" in too_many.json()["detail"]


def test_api_key_guards_predict_and_metrics_but_not_health(exported_model, tiny_images, monkeypatch):
    monkeypatch.setenv("SERVE_API_KEY", "s3cret-key")
    image = next(tiny_images.rglob("*.png"))
    with running_service(exported_model) as url:
        assert requests.get(f"{url}/health", timeout=10).json()["api_key_required"] is True
        without = post(url, [image])
        wrong = post(url, [image], headers={"X-API-Key": "guess"})
        right = post(url, [image], headers={"X-API-Key": "s3cret-key"})
        metrics = requests.get(f"{url}/metrics", timeout=10)
        garbage = requests.post(f"{url}/predict", data=b"\x00" * 1000, timeout=10)  # refused before it is parsed
        log = url.log()
    assert without.status_code == wrong.status_code == metrics.status_code == garbage.status_code == 401
    assert "X-API-Key" in without.json()["detail"] and right.status_code == 200
    assert "s3cret-key" not in log, "the key must never be logged"


def test_metrics_and_logs_count_requests_batches_and_errors(exported_model, tiny_images):
    images = sorted(tiny_images.rglob("*.png"))[:4]
    with running_service(exported_model, args=("--max-batch", "4", "--max-wait-ms", "3000")) as url:
        threads = [threading.Thread(target=post, args=(url, [p])) for p in images]  # 4 clients at once
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        requests.post(f"{url}/predict", files={"files": ("x.png", b"garbage")}, timeout=10)
        text = requests.get(f"{url}/metrics", timeout=10).text
        log = url.log()
    assert 'requests_total{endpoint="/predict",status="200"} 4.0' in text
    assert 'requests_total{endpoint="/predict",status="400"} 1.0' in text
    assert 'images_total{outcome="refused"} 1.0' in text and 'images_total{outcome="ok"} 4.0' in text
    calls = float(text.split("batch_images_count ")[1].split()[0])
    assert calls < 4, f"4 requests at once should share model calls, got {calls} calls"
    assert '"path": "/predict", "status": 400' in log and '"request_id": "' in log


def test_a_full_queue_answers_503_with_retry_after_and_the_service_recovers(exported_model, tiny_images, monkeypatch):
    """In process with a model slowed to 1 s a call (the queue, not the model, is under test)."""
    image = ("i.png", next(tiny_images.rglob("*.png")).read_bytes())

    def slow_predict(model, batch):
        time.sleep(1.0)
        return np.full((len(batch), 2), 0.5, dtype=np.float32)

    monkeypatch.setattr(service_app, "predict", slow_predict)
    app = service_app.create_app(exported_model, settings=ServiceSettings(max_queue=2, max_images=2))
    with TestClient(app) as client:
        first = {}
        thread = threading.Thread(
            target=lambda: first.update(answer=client.post("/predict", files=[("files", image)] * 2))
        )
        thread.start()
        deadline = time.monotonic() + 30
        while client.get("/ready").json()["waiting"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy, not_ready = client.post("/predict", files=[("files", image)]), client.get("/ready")
        thread.join()
        later = client.post("/predict", files=[("files", image)])
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["detail"]
    assert not_ready.status_code == 503, "/ready says no while the queue is full"
    assert first["answer"].status_code == 200 and later.status_code == 200


def test_sigterm_finishes_the_request_in_flight_then_exits(exported_model, tmp_path):
    big = tmp_path / "big.png"  # 36 megapixels of 16-bit grey: decoding it keeps the request in flight a while
    big.write_bytes(big_png(6_000))
    with running_service(exported_model) as url:
        result = {}
        thread = threading.Thread(target=lambda: result.update(answer=post(url, [big])))
        thread.start()
        time.sleep(0.5)  # uploaded, now decoding
        url.process.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        code = url.process.wait(timeout=30)
        log = url.log()
    assert result["answer"].status_code == 200, "the request in flight was answered"
    assert '"event": "stopped"' in log, "the lifespan shutdown ran (model thread stopped)"
    assert code in (0, -signal.SIGTERM), "uvicorn re-raises the signal it handled once it has shut down"


def test_micro_batcher_groups_waiting_requests_and_refuses_past_its_queue():
    calls = []

    def infer(batch):
        calls.append(len(batch))
        return batch[:, :2, 0, 0] * 2

    async def scenario():
        batcher = MicroBatcher(infer, max_batch=8, max_wait_s=0.05, max_queue=10)
        batcher.start()
        inputs = [np.full((1, 3, 1, 1), i, dtype=np.float32) for i in range(10)]
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        with pytest.raises(QueueFull):
            await asyncio.gather(*(batcher.submit(np.zeros((4, 3, 1, 1), np.float32)) for _ in range(3)))
        await batcher.stop()
        return inputs, results

    inputs, results = asyncio.run(scenario())
    assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(10)], "each caller gets its own rows"
    assert calls[:2] == [8, 2], calls


def test_cuda_without_a_cuda_runtime_is_one_clear_line(exported_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: the GPU tests cover --device cuda")
    command = [sys.executable, "-m", "{{ cookiecutter.package }}", "serve", "--model", str(exported_model)]
    result = subprocess.run([*command, "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "onnxruntime-gpu" in result.stderr and "Traceback" not in result.stderr


def test_micro_batcher_survives_a_failing_batch_and_answers_everyone_at_stop():
    failures = iter([True, False])

    def on_batch(size, seconds):
        if next(failures, False):
            raise RuntimeError("metrics broke")

    async def scenario():
        batcher = MicroBatcher(
            lambda batch: batch[:, :2, 0, 0], max_batch=4, max_wait_s=0, max_queue=8, on_batch=on_batch
        )
        batcher.start()
        one = np.ones((1, 3, 1, 1), np.float32)
        with pytest.raises(RuntimeError, match="metrics broke"):
            await batcher.submit(one)
        second = await batcher.submit(one)  # the batcher is still running
        await batcher.stop()
        return second, batcher.running

    second, running = asyncio.run(scenario())
    assert second.shape == (1, 2) and not running


def test_a_bad_service_setting_is_a_usage_error(exported_model):
    command = [sys.executable, "-m", "{{ cookiecutter.package }}", "serve", "--model", str(exported_model)]
    result = subprocess.run([*command, "--max-batch", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--max-batch=0 must be positive" in result.stderr
