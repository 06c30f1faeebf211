"""Notebooks as a person meets them: a copy with some values of its parameters cell edited (as they would edit
them), and what an executed notebook shows that they would have to read past."""

import json
from pathlib import Path


def with_parameters(source: Path, target: Path, values: dict[str, object]) -> Path:
    """``source`` written to ``target`` with the parameters cell's lines for ``values`` set to them (as Python)."""
    document = json.loads(source.read_text(encoding="utf-8"))
    cell = next(c for c in document["cells"] if "parameters" in c["metadata"].get("tags", []))
    lines = []
    for line in "".join(cell["source"]).splitlines():
        name = line.split("=")[0].strip()
        lines.append(f"{name} = {values[name]!r}" if name in values else line)
    cell["source"] = "\n".join(lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document), encoding="utf-8")
    return target


def noise(notebook: Path) -> list[tuple[str, int, str]]:
    """Every output a person would have to read past: stderr blocks, warnings, errors."""
    found = []
    for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output["output_type"] == "stream" else json.dumps(output.get("data", {}))
            text = "".join(text) if isinstance(text, list) else text
            if output.get("name") == "stderr" or output["output_type"] == "error" or "Warning" in text:
                found.append((notebook.name, i, text[:300]))
    return found
