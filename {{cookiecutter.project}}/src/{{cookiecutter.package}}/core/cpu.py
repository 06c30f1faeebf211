"""How many cores this process may really use: one answer for every thread and process pool of the project."""

import math
import os
from pathlib import Path

CGROUP_QUOTA = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def available_cores() -> int:
    """The CPU affinity of this process, capped by a container's CPU quota (docker --cpus, Kubernetes limits),
    which the affinity does not show: without the cap, a 2-CPU container on a 64-core host starts 64 threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_QUOTA.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 here: the affinity is all there is
    return cores
