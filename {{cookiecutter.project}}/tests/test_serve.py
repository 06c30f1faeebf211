import requests

from {{ cookiecutter.package }}.deployment.serve import running_service


def test_service_answers_health_and_predict_over_http(exported_model, tiny_images):
    image = next(tiny_images.rglob("*.png"))
    with running_service(exported_model) as url:
        assert url.startswith("http://127.0.0.1:")
        health = requests.get(f"{url}/health", timeout=10).json()
        assert health["classes"] == ["horizontal", "vertical"]
        assert (health["resolution"], health["resize"]) == (32, "stretch")
        with image.open("rb") as f:
            answer = requests.post(f"{url}/predict", files={"file": f}, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["label"] in health["classes"]
        bad = requests.post(f"{url}/predict", files={"file": ("notes.txt", b"not an image")}, timeout=30)
        assert bad.status_code == 400 and "notes.txt" in bad.json()["detail"]
    try:
        requests.get(f"{url}/health", timeout=2)
        raise AssertionError("service still answering after the context closed")
    except requests.ConnectionError:
        pass
