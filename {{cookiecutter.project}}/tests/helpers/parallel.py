"""How ``make test`` splits the suite over pytest-xdist workers: the tests that share the smoke run (the longest
chain: the pipeline, then the tests that read or re-run it) are one unit of work, handed out first; every other
test file is a unit of its own, so its module fixtures are made once; the integration tests go before the unit
tests.

xdist's own ``--dist loadgroup`` would say the same with marks, but it no longer groups anything on pytest 9.2
(pytest-dev/pytest-xdist#1386): it renames node ids, which pytest now ignores."""

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
