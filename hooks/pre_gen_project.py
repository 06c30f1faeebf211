"""Reject names that would bake a broken project, before anything is written."""

import keyword
import re
import sys

# Cookiecutter fills these literals in; everything below is plain Python.
PROJECT = "{{ cookiecutter.project }}"
PACKAGE = "{{ cookiecutter.package }}"

SLUG = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def problems(project: str, package: str) -> list[str]:
    """Return one message per invalid name; empty when both are valid."""
    found = []
    if not SLUG.match(project):
        found.append(
            f"project={project!r} is not a valid project slug: use lowercase letters, "
            "digits and single dashes, starting with a letter (e.g. 'solar-cells')."
        )
    if not IDENTIFIER.match(package):
        found.append(
            f"package={package!r} is not a valid Python package name: use lowercase "
            "letters, digits and underscores, not starting with a digit (e.g. 'solar_cells')."
        )
    elif keyword.iskeyword(package) or package in sys.stdlib_module_names:
        found.append(
            f"package={package!r} clashes with a Python keyword or standard-library "
            "module: choose another name (e.g. 'my_{package}')."
        )
    return found


if __name__ == "__main__":
    errors = problems(PROJECT, PACKAGE)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    sys.exit(1 if errors else 0)
