"""One pipeline at a time per run folder: an OS file lock (released by the system when its holder dies, so a
crash never leaves it stuck) and, beside it, who holds it, for the message the second one prints."""

import json
import os
import socket
import sys
from datetime import datetime

from filelock import FileLock, Timeout

from ..core.paths import write_atomically
from ..core.run_folder import RunFolder


class RunFolderInUse(RuntimeError):
    """Another pipeline works in this run folder."""


class RunFolderLock:
    def __init__(self, run: RunFolder) -> None:
        self.run, self.lock = run, FileLock(run.lock, timeout=0)

    def __enter__(self) -> "RunFolderLock":
        try:
            self.lock.acquire()
        except Timeout:
            raise RunFolderInUse(
                f"{self.run.root} is in use by {self._owner()}: wait for it to finish, or give this run another "
                "--out folder."
            ) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now().isoformat("T", "seconds")}
        write_atomically(self.run.lock_owner, json.dumps({**owner, "command": " ".join(sys.argv)}))
        return self

    def __exit__(self, *exc) -> None:
        self.run.lock_owner.unlink(missing_ok=True)
        self.lock.release()

    def _owner(self) -> str:
        try:
            owner = json.loads(self.run.lock_owner.read_text())
        except (OSError, ValueError):
            return "another pipeline"
        return f"pipeline process {owner['pid']} on {owner['host']} (since {owner['since']}: {owner['command']})"
