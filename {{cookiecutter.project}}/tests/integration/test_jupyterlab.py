"""JupyterLab itself, as a person uses it: ``jupyter lab`` on 127.0.0.1, the review notebook opened in a real
headless Chromium, all its cells run from the browser; then what the page shows: figures, no warning, and the
review widget, whose Relabel button writes the labels review file."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers.browser import chromium
from helpers.notebooks import with_parameters

from {{ cookiecutter.package }}.acquisition.steps import acquire
from {{ cookiecutter.package }}.core.config import DataConfig
from {{ cookiecutter.package }}.core.paths import project_root
from {{ cookiecutter.package }}.core.run_folder import RunFolder
from {{ cookiecutter.package }}.deployment.launcher import free_port

pytestmark = pytest.mark.notebooks
NOTEBOOK = "02_explore_and_review.ipynb"
SETTINGS = {"RESOLUTION": 32, "REVIEW_FOLDS": 2, "BATCH_SIZE": 16}  # small and quick: 24 tiny images


def review_notebook(folder: Path, run: RunFolder) -> Path:
    """The project's review notebook with its parameters cell pointing at ``run`` (a person would edit it so)."""
    source = project_root() / "code" / "01_data_acquisition_and_understanding" / NOTEBOOK
    own = {"RUN_DIR": str(run.root), "FEATURE_CACHE": str(folder / "features")}  # the test's folders, not the project's
    return with_parameters(source, folder / NOTEBOOK, {**SETTINGS, **own})


@pytest.fixture(scope="module")
def lab(tiny_images, tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    run = RunFolder.open(root / "run")
    review_file = root / "labels_review.csv"
    acquire(DataConfig(data_dir=str(tiny_images), labels_review=str(review_file), workers=1), run)
    review_notebook(root / "notebooks", run)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(project_root() / ".jupyter" / "lab" / "user-settings"),  # as `make lab`
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
    }
    command = [
        *(sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"),
        *("--IdentityProvider.token=", "--allow-root", "--LabApp.expose_app_in_browser=True"),  # CI runs as root
        f"--ServerApp.root_dir={root / 'notebooks'}",
    ]
    log = (root / "lab.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 120, "JupyterLab to start")
        yield url, run, review_file
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception:  # not up yet, whatever it says
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"waited {seconds} s for {what}")


KERNEL_IDLE = """
const app = window.jupyterapp;
const panels = app ? Array.from(app.shell.widgets("main")).filter(w => w.sessionContext) : [];
if (!panels.length) return null;
app.shell.activateById(panels[0].id);
const session = panels[0].sessionContext.session;
return session && session.kernel ? session.kernel.status : null;
"""


def test_the_review_notebook_runs_in_jupyterlab_and_its_widget_relabels_an_image(lab, tmp_path):
    url, run, review_file = lab
    driver = chromium(tmp_path / "profile")
    try:
        driver.set_window_size(1400, 1000)
        driver.get(f"{url}/lab/tree/{NOTEBOOK}")
        wait_for(lambda: driver.execute_script(KERNEL_IDLE) == "idle", 180, "the notebook's kernel")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        relabel = wait_for(lambda: _button(driver, "Relabel"), 600, "the review widget's Relabel button")
        finished = re.compile(r"in the run folder \(\d+ images reviewed\)")  # the last cell's output, not its code
        wait_for(lambda: finished.search(driver.page_source), 300, "the last cell")
        driver.save_screenshot(str(tmp_path / "lab.png"))
        figures = driver.find_elements("css selector", ".jp-RenderedImage img")
        assert len(figures) >= 4, "the notebook's figures are drawn in the page"
        stderr = driver.find_elements("css selector", "[data-mime-type='application/vnd.jupyter.stderr']")
        assert [e.text for e in stderr if e.text.strip()] == [], "a warning or stderr block is shown"
        shown = {b.text for b in driver.find_elements("css selector", "button")}
        assert {"Keep", "Relabel", "Exclude", "Undo"} <= shown
        assert "notified about official Jupyter news" not in driver.page_source, "the project's settings turn it off"
        assert not review_file.exists()
        relabel.click()
        wait_for(review_file.exists, 30, "the labels review file")
    finally:
        driver.quit()
    lines = review_file.read_text().splitlines()
    assert lines[0] == "path,action,new_label,note" and len(lines) == 2
    path, action, new_label, _ = lines[1].split(",")
    manifest = run.read_manifest().set_index("origin")
    assert action == "relabel" and new_label != manifest.loc[path, "label"] and new_label in {"horizontal", "vertical"}


def _button(driver, text: str):
    found = [b for b in driver.find_elements("css selector", "button") if b.text == text]
    return found[0] if found else None
