"""``status``: each stage of a run folder, up to date or not and why, and how long it took; ``--graph`` draws the
stages and the run files between them (PNG, and Mermaid text that GitHub and JupyterLab render)."""

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import resolve, write_atomically
from ..core.run_folder import RunFolder
from ..core.stages import STAGES
from .staleness import Verdict, judge

COLOURS = {"up to date": "#cde8c4", "stale": "#f9d9a6", "never run": "#e4e4e4", "failed": "#f4b6b0"}
COLOURS["interrupted"] = COLOURS["failed"]


@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str
    why: str
    seconds: float | None
    by: str

    def row(self) -> list[str]:
        took = f"{self.seconds:.1f} s" if self.seconds is not None else ""
        return [self.name, self.state, took, self.by, self.why if self.state != "up to date" else ""]


def newest_run(root: Path | None = None) -> Path:
    """The run folder ``status`` looks at by default: the newest under runs/, else runs/lab (JupyterLab's)."""
    runs = resolve(root or "runs")
    found = sorted((p for p in runs.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    return found[-1] if found else runs / "lab"


def last_values(run: RunFolder) -> dict[str, object]:
    """The parameters the last ``pipeline`` here ran with (its profile, ``-p`` values, data); none after JupyterLab."""
    from .pipeline import profile_values

    try:
        settings = json.loads(run.pipeline_settings.read_text())
    except (OSError, ValueError):
        return {}
    values = {**profile_values(settings["profile"]), **settings["overrides"]}
    return {**values, **({"DATA_DIR": str(resolve(settings["data_dir"]))} if settings.get("data_dir") else {})}


def stage_status(run: RunFolder, values: dict[str, object] | None = None) -> list[StageStatus]:
    """Every stage judged with ``values`` (default: those of the last pipeline here). A stage after a stale one
    is shown as it stands; the pipeline would run it only if what it reads then changes."""
    values = last_values(run) if values is None else values
    verdicts = [judge(stage, run, values) for stage in STAGES]
    return [_status(v) for v in verdicts]


def _status(verdict: Verdict) -> StageStatus:
    record = verdict.record
    seconds = record.seconds if record is not None and record.status != "running" else None
    return StageStatus(verdict.stage.name, verdict.state, verdict.why, seconds, record.by if record else "")


def table(statuses: list[StageStatus]) -> str:
    rows = [["stage", "state", "took", "by", "why"], *(s.row() for s in statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4] for r in rows).rstrip()


def mermaid(run: RunFolder, statuses: list[StageStatus]) -> str:
    """The graph as Mermaid: stages as boxes coloured by state, run files as rounded nodes between them."""
    state = {s.name: s.state for s in statuses}
    lines = ["flowchart LR"]
    for colour_state, colour in COLOURS.items():
        lines.append(f"  classDef {_css(colour_state)} fill:{colour},stroke:#555")
    for stage in STAGES:
        lines.append(f'  {_id(stage.name)}["{stage.name}<br/>{state[stage.name]}"]:::{_css(state[stage.name])}')
    for source, target in _edges(run):
        lines.append(f"  {_id(source)} --> {_id(target)}")
    for name in sorted({n for edge in _edges(run) for n in edge} - {s.name for s in STAGES}):
        lines.append(f'  {_id(name)}(["{name}"])')
    return "\n".join(lines) + "\n"


def _edges(run: RunFolder) -> list[tuple[str, str]]:
    """Stage -> file it writes, file -> stage that reads it; the images and the label review feed acquisition."""
    edges = [("images", STAGES[0].name), ("labels_review.csv", STAGES[0].name)]
    written = set()
    for stage in STAGES:
        reads = [_file(p, run) for p in stage.reads(run)]
        edges += [(name, stage.name) for name in reads]
        writes = [_file(p, run) for p in stage.writes(run)]
        edges += [(stage.name, name) for name in writes if name not in written]
        written.update(writes)
    return list(dict.fromkeys(edges))


def _file(path: Path, run: RunFolder) -> str:
    relative = path.relative_to(run.root).as_posix()
    return relative + ("/" if not relative.endswith((".csv", ".json", ".md", ".npz")) else "")


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def _css(state: str) -> str:
    return state.replace(" ", "_")


def draw(run: RunFolder, statuses: list[StageStatus]) -> tuple[Path, Path]:
    """The graph as ``<run>/stages/graph.png`` and ``graph.mmd``; returns both paths."""
    import matplotlib.pyplot as plt

    mmd = run.graph.with_suffix(".mmd")
    write_atomically(mmd, mermaid(run, statuses))
    state = {s.name: s.state for s in statuses}
    positions = _layout(run)
    fig, ax = plt.subplots(figsize=(16, 7))
    for source, target in _edges(run):
        ax.annotate("", positions[target], positions[source], arrowprops={"arrowstyle": "->", "color": "#777"})
    for name, (x, y) in positions.items():
        is_stage = name in state
        box = {"boxstyle": "round,pad=0.4", "fc": COLOURS[state[name]] if is_stage else "white", "ec": "#555"}
        label = f"{name}\n{state[name]}" if is_stage else name
        ax.text(x, y, label, ha="center", va="center", fontsize=8 if is_stage else 7, bbox=box)
    ax.set_title(f"Pipeline stages of {run.root.name}: what each reads and writes, coloured by state")
    ax.set_xlim(-1, max(x for x, _ in positions.values()) + 1)
    ax.set_ylim(-3.2, 3.2)
    ax.axis("off")
    png = run.graph.with_suffix(".png")
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png, mmd


def _layout(run: RunFolder) -> dict[str, tuple[float, float]]:
    """Stages along a line in pipeline order; each file just after the stage that writes it (inputs first)."""
    positions: dict[str, tuple[float, float]] = {}
    column = 0.0
    edges = _edges(run)
    for i, stage in enumerate(STAGES):
        files = [t for s, t in edges if s == stage.name] if i else []
        inputs = [s for s, t in edges if t == stage.name and s not in positions] if i == 0 else []
        for k, name in enumerate(inputs):
            positions[name] = (column, 1.2 * (k - (len(inputs) - 1) / 2))
        column += 1.4 if inputs else 0
        positions[stage.name] = (column, 0.0 if i % 2 == 0 else 0.6)
        files = [t for s, t in edges if s == stage.name]
        for k, name in enumerate(files):
            positions[name] = (column + 0.8, -1.4 - 0.55 * k if i % 2 == 0 else 1.6 + 0.55 * k)
        column += 1.6
    return positions
