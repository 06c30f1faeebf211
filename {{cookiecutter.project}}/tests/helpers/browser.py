"""A real headless Chromium driven by Selenium, for the service's page and for JupyterLab.

The browser and its driver are Debian's (apt-get install chromium chromium-driver) unless CHROME_BINARY and
CHROMEDRIVER name others, as the GitHub workflow does for its runner's Google Chrome and ChromeDriver."""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROME_BINARY") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER") or "/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def browser_or_skip() -> None:
    """Skip without a browser and its driver, unless REQUIRE_BROWSER=1 (CI) makes that a failure."""
    named = {CHROMIUM: "CHROME_BINARY", CHROMEDRIVER: "CHROMEDRIVER"}
    missing = [f"{path} ({name})" for path, name in named.items() if not path.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        reason = (
            f"no browser for the page test: {', '.join(missing)} missing; apt-get install chromium chromium-driver, "
            "or set CHROME_BINARY and CHROMEDRIVER to a Chrome and its ChromeDriver"
        )
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def chromium(profile: Path, log_requests: bool = False):
    """A headless Chromium with a fresh profile (the caller quits it)."""
    browser_or_skip()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if log_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
