"""The serving image without Docker: the Dockerfile's own COPY, RUN and CMD lines replayed in a fresh virtual
environment (the `serve` extra from the package registry, no torch), then the service started from it."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from {{ cookiecutter.package }}.deployment.launcher import free_port, wait_until_ready

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = "{{ cookiecutter.package }}"
pytestmark = pytest.mark.slow


def serve_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of the `serve` stage, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    pairs = [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]
    start = next(i for i, (op, args) in enumerate(pairs) if op == "FROM" and args.endswith(" AS serve"))
    end = next((i for i in range(start + 1, len(pairs)) if pairs[i][0] == "FROM"), len(pairs))
    return pairs[start + 1 : end]


def words(args: str) -> list[str]:
    """An instruction's words without Docker's own leading --flags (--mount, --chown, --interval ...)."""
    split = shlex.split(args)
    while split and split[0].startswith("--"):
        split.pop(0)
    return split


def replay_build(stage: list[tuple[str, str]], app: Path, venv: Path) -> dict[str, str]:
    """COPY into ``app`` (the WORKDIR), then the RUN that installs, with the venv's python; returns the ENV."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")  # as .dockerignore
    for op, args in stage:
        if op == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
        elif op == "COPY":
            *sources, dest = words(args)
            for source in sources:
                target = app / dest
                if (PROJECT / source).is_dir():
                    shutil.copytree(PROJECT / source, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(PROJECT / source, target / source)
        elif op == "RUN" and "pip install" in args:
            python, *command = words(args)
            assert python == "python", f"expected the RUN line to start with python -m pip: {args}"
            subprocess.run([str(venv / "bin/python"), *command], cwd=app, env=env, check=True, timeout=1800)
    return env


def in_venv(command: list[str], venv: Path, port: int, model: Path) -> list[str]:
    """A CMD of the Dockerfile as run here: the venv's python, our model folder, loopback and a free port."""
    swap = {"python": str(venv / "bin/python"), "/model": str(model), "0.0.0.0": "127.0.0.1", "8000": str(port)}
    return [swap.get(word, word.replace(":8000/", f":{port}/")) for word in command]


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], list[tuple[str, str]]]:
    """A fresh venv with the project installed by the Dockerfile's own lines; the venv, its ENV and the stage."""
    root = tmp_path_factory.mktemp("serve-image")
    venv, app = root / "venv", root / "app"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    stage = serve_stage(PROJECT / "Dockerfile")
    return venv, replay_build(stage, app, venv), stage


def test_serve_extra_has_no_torch_and_installs_a_wheel(serve_venv):
    venv, env, _ = serve_venv
    code = f"import importlib.util, {PACKAGE}; print(importlib.util.find_spec('torch') is None, {PACKAGE}.__file__)"
    answer = subprocess.run([str(venv / "bin/python"), "-c", code], env=env, capture_output=True, text=True, cwd=venv)
    assert answer.returncode == 0, answer.stderr
    no_torch, location = answer.stdout.split()
    assert no_torch == "True", "torch is installed by the serve extra"
    assert location.startswith(str(venv)), f"{PACKAGE} imported from {location}, not from the installed wheel"


def test_dockerfile_command_serves_the_model_and_page(serve_venv, exported_model, tiny_images, tmp_path):
    venv, env, stage = serve_venv
    port = free_port()
    command = in_venv(json.loads(dict(stage)["CMD"]), venv, port, exported_model)
    healthcheck = in_venv(json.loads(dict(stage)["HEALTHCHECK"].split(" CMD ", 1)[1]), venv, port, exported_model)
    assert subprocess.run(healthcheck, env=env, capture_output=True, timeout=30).returncode != 0  # nothing there yet
    log = tmp_path / "service.log"  # a file, not a pipe: nobody reads a pipe while it runs, and a full one stalls it
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=venv, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log.read_text, 120)
        assert subprocess.run(healthcheck, env=env, capture_output=True, timeout=30).returncode == 0
        health = requests.get(f"{url}/health", timeout=10).json()
        image = sorted(tiny_images.rglob("*.png"))[0]
        answer = requests.post(f"{url}/predict", files={"files": (image.name, image.read_bytes())}, timeout=60)
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]
        assert health["classes"] == ["horizontal", "vertical"] and prediction["label"] in health["classes"]
        assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        page = requests.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        page_file = PROJECT / "src" / PACKAGE / "deployment/service/page/index.html"
        assert page.text == page_file.read_text(encoding="utf-8")  # the wheel carries the page
    finally:
        process.terminate()
        process.wait(timeout=30)
