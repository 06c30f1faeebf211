"""The template cloned and baked with the project's recorded answers, as cruft bakes it for its own update."""

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cruft._commands.utils import generate
from cruft._commands.utils.cookiecutter import get_cookiecutter_repo
from cruft.exceptions import CruftError
from git import Repo

from .state import SyncError


@contextmanager
def cloned_template(state: dict, folder: Path, checkout: str | None) -> Iterator[Repo]:
    try:
        with get_cookiecutter_repo(state["template"], folder, checkout) as repo:
            yield repo
    except CruftError as error:
        raise SyncError(f"the template at {state['template']}: {error.message}") from None


def bake_both(repo: Repo, state: dict, project: Path, new_commit: str, folder: Path) -> tuple[Path, Path, dict]:
    """Bake the project's recorded commit and ``new_commit`` under ``folder`` (hooks run, and know each is a
    re-bake); return both folders and the newer bake's context.

    Files the user deleted from the project are left out of both bakes, so they stay deleted.
    """
    old, new = folder / "old", folder / "new"
    user_deleted: set[Path] = set()
    common = {"repo": repo, "project_dir": project, "deleted_paths": user_deleted}
    # a copy of the state each time: cruft extends its skip list in place
    generate.cookiecutter_template(
        output_dir=old, cruft_state=copy.deepcopy(state), checkout=state["commit"], update_deleted_paths=True, **common
    )
    context = generate.cookiecutter_template(
        output_dir=new, cruft_state=copy.deepcopy(state), checkout=new_commit, **common
    )
    return old, new, context
