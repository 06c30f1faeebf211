"""``python -m template_sync check | diff | update`` (``make template-check``, ``template-diff``,
``template-update``), run from the project's root (``tools`` on the import path)."""

import argparse
import sys
from pathlib import Path

import cruft

from .state import SyncError, latest_commit, load_state, short
from .update import Report, update

COMMANDS = {
    "check": "is the project behind its template? exit 0 when up to date, 1 when behind",
    "diff": "where the project differs from a fresh bake of its recorded template commit",
    "update": "apply the template's changes since the bake (exit 1 when conflicts are left to resolve)",
}


def check(project: Path, checkout: str | None) -> int:
    state = load_state(project)
    ours, theirs = state["commit"], latest_commit(state["template"], checkout)
    where = f"{checkout or 'HEAD'} of {state['template']}"
    if ours == theirs:
        print(f"Up to date: this project is at template commit {short(ours)}, the newest ({where}).")
        return 0
    print(
        f"Behind: this project is at template commit {short(ours)}, the template at {short(theirs)} ({where}); "
        "`make template-update` brings its changes in."
    )
    return 1


def diff(project: Path) -> int:
    commit = short(load_state(project)["commit"])
    print(f"Your project (-) against a fresh bake of template commit {commit} with your answers (+):", flush=True)
    if cruft.diff(project, exit_code=True):
        print(f"No difference from a fresh bake of template commit {commit}.")
    return 0


def print_report(report: Report) -> None:
    if report.old_commit == report.new_commit:
        print(f"Up to date: this project is at template commit {short(report.new_commit)}; nothing to do.")
        return
    print(f"Template update {short(report.old_commit)} -> {short(report.new_commit)} ({report.template}):")
    sections = [
        ("Changed as the template changed them", report.changed),
        ("Notebooks merged cell by cell with your edits", report.notebooks),
        ("Deleted (the template removed them; you had not changed them)", report.deleted),
        ("Kept (the template removed them, but you changed them: delete them if you no longer need them)", report.kept),
    ]
    for title, paths in sections:
        if paths:
            print(f"  {title}:\n" + "\n".join(f"    {path}" for path in paths))
    if report.conflicts:
        print(
            "  CONFLICTS: both versions are marked (<<<<<<< yours ... ======= ... >>>>>>> template); "
            "edit them, then `git add` each file:\n" + "\n".join(f"    {where}" for where in report.conflicts)
        )
    print(f"  .cruft.json now names template commit {short(report.new_commit)}; review with `git diff --cached`.")
    print("\nTemplate changes since the bake (CHANGELOG.md):")
    print("\n".join(report.changelog) if report.changelog else "  (no CHANGELOG entry between the two commits)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="template_sync", description=__doc__)
    parser.add_argument("command", choices=COMMANDS, help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    parser.add_argument("--project", type=Path, default=Path("."), help="the project's root (default: here)")
    parser.add_argument("--checkout", help="the template's branch or tag to follow (default: its default branch)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.project, args.checkout)
        if args.command == "diff":
            return diff(args.project)
        report = update(args.project, args.checkout)
    except SyncError as error:
        print(f"template-{args.command}: {error}", file=sys.stderr)
        return 2
    print_report(report)
    return 1 if report.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
