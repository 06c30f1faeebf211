"""Reject names that would bake a broken project, before anything is written."""

import difflib
import keyword
import re
import sys

# Cookiecutter fills these literals in; everything below is plain Python.
PROJECT = "{{ cookiecutter.project }}"
PACKAGE = "{{ cookiecutter.package }}"
BACKBONE = "{{ cookiecutter.backbone }}"

SLUG = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# The baked project's own backbones (its core/choices.py BACKBONES; a template test keeps the two lists equal), and
# the form of a timm model's name (core/choices.py TIMM_NAME).
BACKBONES = ("efficientnet_lite0", "efficientnet_lite2", "alexnet", "resnet18", "resnet34", "resnet50", "resnet101")
BACKBONES += ("resnet152",)
TIMM_NAME = re.compile(r"^timm:[a-z0-9_]+(\.[a-z0-9_]+)?$")


def problems(project: str, package: str, backbone: str = BACKBONES[0]) -> list[str]:
    """Return one message per invalid name; empty when all are valid."""
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
    return found + backbone_problems(backbone)


def backbone_problems(backbone: str) -> list[str]:
    """A bundled or torchvision backbone, or a timm model by name; where timm is installed, one it knows."""
    if backbone in BACKBONES:
        return []
    if not TIMM_NAME.match(backbone):
        return [
            f"backbone={backbone!r} is not a backbone: use one of {', '.join(BACKBONES)}, or a timm model as "
            "timm:<model>[.<tag>] (e.g. 'timm:convnext_tiny.fb_in22k_ft_in1k')."
        ]
    try:
        import timm
    except ImportError:  # the baked project checks the name against timm before any work
        return []
    name = backbone.removeprefix("timm:")
    if timm.is_model(name.partition(".")[0]) and (name.partition(".")[0] == name or timm.list_pretrained(name)):
        return []
    close = difflib.get_close_matches(name, timm.list_pretrained() or timm.list_models(), n=5, cutoff=0.6)
    hint = (
        f"close names: {', '.join('timm:' + c for c in close)}"
        if close
        else "timm.list_pretrained('PATTERN*') lists them"
    )
    return [f"backbone={backbone!r}: timm {timm.__version__} has no such model or weights ({hint})."]


if __name__ == "__main__":
    errors = problems(PROJECT, PACKAGE, BACKBONE)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    sys.exit(1 if errors else 0)
