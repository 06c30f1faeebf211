"""The service's page in a real headless Chromium: upload images, read labels and bars, see refusals."""

import base64
import json
import os
import re
from pathlib import Path

import pytest
import requests
from helpers.browser import chromium

from {{ cookiecutter.package }}.deployment.launcher import running_service


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), log_requests=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def service(exported_model: Path):
    with running_service(exported_model) as url:
        yield url


def open_page(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/")
    WebDriverWait(driver, 30).until(lambda d: "classes: horizontal, vertical" in d.find_element("id", "model").text)


def pick(driver, paths: list[Path]) -> None:
    """Choose files in the page's file input, as a person does with the picker."""
    driver.find_element("id", "files").send_keys("\n".join(str(p) for p in paths))


def wait_for_results(driver, count: int) -> list:
    """The result items once ``count`` of them are there and none is still waiting for the service."""
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(d):
        items = d.find_elements("css selector", "#results li.result")
        waiting = [i for i in items if i.find_element("class name", "outcome").text == "Classifying…"]
        return items if len(items) == count and not waiting else False

    return WebDriverWait(driver, 60).until(settled)


def item_for(items: list, name: str):
    return next(i for i in items if i.get_attribute("data-filename") == name)


def service_answer(url: str, path: Path, key: str = "") -> requests.Response:
    """What POST /predict answers for the file on its own, as a script would send it."""
    headers = {"X-API-Key": key} if key else {}
    return requests.post(f"{url}/predict", files={"files": (path.name, path.read_bytes())}, headers=headers, timeout=60)


def api_prediction(url: str, path: Path, key: str = "") -> dict:
    answer = service_answer(url, path, key)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"][0]


def label_shown(item) -> str:
    return item.find_element("class name", "label").text


def assert_shows_prediction(item, expected: dict, classes: list[str]) -> None:
    assert label_shown(item) == expected["label"]
    rows = item.find_elements("css selector", ".bars .bar")
    assert [r.get_attribute("data-class") for r in rows] == classes  # one bar per class, in the model's order
    for row in rows:
        probability = expected["probabilities"][row.get_attribute("data-class")]
        shown = row.find_element("class name", "pct").text
        assert re.fullmatch(r"\d{1,3}\.\d%", shown), shown
        assert float(shown[:-1]) == pytest.approx(100 * probability, abs=0.051)
        track, fill = row.find_element("class name", "track"), row.find_element("class name", "fill")
        assert fill.size["width"] / track.size["width"] == pytest.approx(probability, abs=0.02)


def page_requests(driver, url: str) -> list[tuple[str, str]]:
    """(method, url) of every request the page at ``url`` caused since the last call, from Chromium's network log.

    The browser's own traffic (its start page) is left out: only requests for the page's documents, or that
    the page initiated (fetches, images, frames), count."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.requestWillBeSent":
            continue
        params, request = message["params"], message["params"]["request"]
        origins = (params.get("documentURL", ""), params.get("initiator", {}).get("url", ""), request["url"])
        if any(origin.startswith(f"{url}/") for origin in origins):
            found.append((request["method"], request["url"]))
    return found


def assert_only_the_service(sent: list[tuple[str, str]], page_source: str, url: str) -> None:
    elsewhere = [u for _, u in sent if not u.startswith((f"{url}/", "blob:", "data:"))]
    assert not elsewhere, f"the page asked other hosts: {elsewhere}"
    links = [u for u in re.findall(r"https?://[^\s\"'<>)]+", page_source) if not u.startswith(f"{url}/")]
    assert not links, f"the page names other hosts: {links}"


def test_page_classifies_uploaded_images_like_the_api(browser, service, tiny_images):
    open_page(browser, service)
    classes = requests.get(f"{service}/health", timeout=10).json()["classes"]
    images = [sorted(tiny_images.rglob("*.png"))[0], sorted(tiny_images.rglob("*.jpg"))[-1]]
    pick(browser, images)
    items = wait_for_results(browser, len(images))
    for image in images:
        item = item_for(items, image.name)
        assert_shows_prediction(item, api_prediction(service, image), classes)
        thumbnail = item.find_element("tag name", "img")
        assert browser.execute_script("return arguments[0].naturalWidth", thumbnail) > 0
    sent = page_requests(browser, service)
    assert [m for m, u in sent if u == f"{service}/predict"] == ["POST"]  # both images in one request
    assert_only_the_service(sent, browser.page_source, service)
    assert "2 classified" in browser.find_element("id", "status").text


def test_page_sends_many_images_in_a_few_requests(browser, service, tiny_images):
    open_page(browser, service)
    images = sorted(tiny_images.rglob("*.*"))[:10]
    pick(browser, images)
    items = wait_for_results(browser, len(images))
    assert [item.get_attribute("data-filename") for item in items] == [p.name for p in images]
    assert all(label_shown(item) in ("horizontal", "vertical") for item in items)
    assert [m for m, u in page_requests(browser, service) if u == f"{service}/predict"] == ["POST", "POST"]  # 8 + 2


def test_page_shows_the_refusal_beside_the_wrong_file(browser, service, tiny_images, tmp_path):
    open_page(browser, service)
    text, image = tmp_path / "notes.txt", sorted(tiny_images.rglob("*.png"))[1]
    text.write_text("not an image")
    refusal = service_answer(service, text)
    assert refusal.status_code == 400
    pick(browser, [text, image])  # one pick, one request: the page must still answer each file
    items = wait_for_results(browser, 2)
    error = item_for(items, "notes.txt").find_element("class name", "error").text
    assert error == f"Refused (400): {refusal.json()['detail']}" and "notes.txt" in error
    assert not item_for(items, "notes.txt").find_elements("class name", "bar")
    classes = requests.get(f"{service}/health", timeout=10).json()["classes"]
    assert_shows_prediction(item_for(items, image.name), api_prediction(service, image), classes)
    assert_only_the_service(page_requests(browser, service), browser.page_source, service)


def test_dropping_an_image_on_the_page_classifies_it(browser, service, tiny_images):
    open_page(browser, service)
    image = sorted(tiny_images.rglob("*.jpg"))[0]
    browser.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], arguments[1], {type: "image/jpeg"}));
        const drop = new DragEvent("drop", {dataTransfer: data, bubbles: true});
        document.getElementById("results").dispatchEvent(drop);""",
        base64.b64encode(image.read_bytes()).decode(),
        image.name,
    )
    (item,) = wait_for_results(browser, 1)
    assert label_shown(item) == api_prediction(service, image)["label"]


def test_page_asks_for_the_api_key_when_the_service_needs_one(browser, exported_model, tiny_images):
    key, image = "page-test-key", sorted(tiny_images.rglob("*.png"))[2]
    env = {**os.environ, "PAGE_TEST_KEY": key}
    with running_service(exported_model, args=("--api-key-env", "PAGE_TEST_KEY"), env=env) as url:
        open_page(browser, url)
        field = browser.find_element("id", "key")
        assert field.is_displayed() and browser.find_element("css selector", "label[for=key]").text == "API key"
        pick(browser, [image])
        (item,) = wait_for_results(browser, 1)
        assert item.find_element("class name", "error").text.startswith("Refused (401): ")
        field.send_keys(key)
        pick(browser, [image])
        second = wait_for_results(browser, 2)[1]
        assert label_shown(second) == api_prediction(url, image, key)["label"]


def test_page_hides_the_key_field_when_no_key_is_needed(browser, service):
    open_page(browser, service)
    assert not browser.find_element("id", "key").is_displayed()
