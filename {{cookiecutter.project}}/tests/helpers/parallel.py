"""How ``make test`` splits the suite over pytest-xdist workers: the tests that share the smoke run (the longest
chain: the pipeline, then the tests that read or re-run it) are one unit of work, handed out first; every other
test file is a unit of its own, so its module fixtures are made once; the integration tests go before the unit
tests.

xdist's own ``--dist loadgroup`` would say the same with marks, but it no longer groups anything on pytest 9.2
(pytest-dev/pytest-xdist#1386): it renames node ids, which pytest now ignores.

Each worker also keeps to a share of the cores (``share_the_cores``)."""

import os

SMOKE_RUN = "smoke run"
SMOKE_RUN_FILES = ("tests/integration/test_incremental.py", "tests/integration/test_notebooks.py")


def unit_of_work(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    return SMOKE_RUN if path in SMOKE_RUN_FILES else path


def handed_out(nodeid: str) -> tuple[bool, bool]:
    """The order units are handed out in: the longest first (the smoke run, then the integration tests), so the
    many short unit tests fill in at the end and the workers finish together."""
    return unit_of_work(nodeid) != SMOKE_RUN, nodeid.startswith("tests/unit/")


def scheduler(config, log):
    """A pytest-xdist scheduler that hands out ``unit_of_work`` units in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnitOfWork(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    config.option.loadscopereorder = False  # keep the order the workers collected (sorted by ``handed_out``)
    return ByUnitOfWork(config, log)


def share_the_cores(config) -> None:
    """On a pytest-xdist worker, keep this process and its children (kernels, commands, servers) to the worker's
    share of the cores. Otherwise every test process starts a thread per core in torch and ONNX Runtime, and with
    more threads than cores they spin waiting on each other: a fine-tuning test that takes 6 s alone took 58 s
    beside another worker on 2 cores. Only a real worker (``config.workerinput``): a pytest run inside a test of
    another suite's worker inherits its PYTEST_XDIST_* variables, and must not pin itself."""
    worker = getattr(config, "workerinput", None)
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores, workers = sorted(os.sched_getaffinity(0)), int(worker["workercount"])
    index = int(worker["workerid"].removeprefix("gw"))
    share = cores[index::workers] if len(cores) >= workers else [cores[index % len(cores)]]
    os.sched_setaffinity(0, share)
    os.environ["OMP_NUM_THREADS"] = str(len(share))  # for libraries that size their pools by this, not affinity
    import torch  # its pool was sized on import, before this ran

    torch.set_num_threads(len(share))
