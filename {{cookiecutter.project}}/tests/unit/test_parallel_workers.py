"""How ``make test`` shares the cores between its xdist workers (``tests/helpers/parallel.py``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
PROBE = """
import json, os, sys, types
sys.path.insert(0, sys.argv[1])
from helpers.parallel import share_the_cores
worker = json.loads(sys.argv[2])
config = types.SimpleNamespace(**({"workerinput": worker} if worker else {}))
share_the_cores(config)
import torch
print(json.dumps({"cores": sorted(os.sched_getaffinity(0)), "torch": torch.get_num_threads(),
                  "omp": os.environ.get("OMP_NUM_THREADS")}))
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="core affinity is Linux's")


def shared(workerinput: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    command = [sys.executable, "-c", PROBE, str(TESTS), json.dumps(workerinput)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=True)
    return json.loads(result.stdout)


def test_each_worker_keeps_to_its_own_share_of_the_cores_and_its_children_inherit_it():
    cores = sorted(os.sched_getaffinity(0))
    workers = 2
    shares = [shared({"workerid": f"gw{i}", "workercount": workers}) for i in range(workers)]
    for i, share in enumerate(shares):
        expected = cores[i::workers] if len(cores) >= workers else [cores[i % len(cores)]]
        assert share["cores"] == expected, (cores, share)
        assert share["torch"] == len(expected) and share["omp"] == str(len(expected)), share
    if len(cores) >= workers:
        assert not set(shares[0]["cores"]) & set(shares[1]["cores"]), "no core is shared by two workers"


def test_a_process_that_is_not_a_worker_keeps_every_core():
    """A pytest run started inside another suite's test inherits PYTEST_XDIST_* but is no worker of its own."""
    assert shared(None)["cores"] == sorted(os.sched_getaffinity(0))
