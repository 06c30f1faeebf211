"""``status``: each stage of a run folder, up to date or not and why, and how long it took; ``--graph`` draws the
stages and the run files between them (PNG, and Mermaid text that GitHub and JupyterLab render)."""

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import resolve, write_atomically
from ..core.profiles import profile_values
from ..core.run_folder import RunFolder
from ..core.stages import STAGES, edges, mermaid
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
        return [self.name, self.state, took, self.by, self.why if self.state not in ("up to date", "never run") else ""]


def newest_run(root: Path | None = None) -> Path:
    """The run folder ``status`` looks at by default: the newest under runs/, else runs/lab (JupyterLab's)."""
    runs = resolve(root or "runs")
    found = sorted((p for p in runs.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    return found[-1] if found else runs / "lab"


def last_values(run: RunFolder) -> dict[str, object]:
    """The parameters the last ``pipeline`` here ran with (its profile, ``-p`` values, data); none after JupyterLab."""
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


def draw(run: RunFolder, statuses: list[StageStatus]) -> tuple[Path, Path]:
    """The graph as ``<run>/stages/graph.png`` and ``graph.mmd``; returns both paths."""
    import matplotlib.pyplot as plt

    mmd = run.graph.with_suffix(".mmd")
    write_atomically(mmd, mermaid(run, {s.name: s.state for s in statuses}, COLOURS))
    state = {s.name: s.state for s in statuses}
    positions = _layout(run)
    fig, ax = plt.subplots(figsize=(20, 7))
    for source, target in edges(run):
        arrow = {"arrowstyle": "-|>", "color": "#777", "shrinkA": 20, "shrinkB": 26}
        ax.annotate("", positions[target], positions[source], arrowprops=arrow)
    for name, (x, y) in positions.items():
        is_stage = name in state
        box = {"boxstyle": "round,pad=0.4", "fc": COLOURS[state[name]] if is_stage else "white", "ec": "#555"}
        label = f"{name}\n{state[name]}" if is_stage else name
        ax.text(x, y, label, ha="center", va="center", fontsize=8 if is_stage else 7, bbox=box)
    ax.set_title(f"Pipeline stages of {run.root.name}: what each reads and writes, coloured by state")
    ax.set_xlim(min(x for x, _ in positions.values()) - 1.2, max(x for x, _ in positions.values()) + 1.2)
    ax.set_ylim(min(y for _, y in positions.values()) - 0.6, max(y for _, y in positions.values()) + 0.6)
    ax.axis("off")
    png = run.graph.with_suffix(".png")
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png, mmd


def _layout(run: RunFolder) -> dict[str, tuple[float, float]]:
    """Stages along a line in pipeline order; the files a stage writes stacked just after it (below it, and above
    for every other stage, so labels do not collide); inputs no stage writes just before their reader."""
    links, positions, names = edges(run), {}, {stage.name for stage in STAGES}
    for i, stage in enumerate(STAGES):
        x, side = 3.0 * i, -1 if i % 2 == 0 else 1
        positions[stage.name] = (x, 0.0)
        outside = [s for s, t in links if t == stage.name and s not in positions and s not in names]
        for k, name in enumerate(outside):
            positions[name] = (x - 1.5, 1.2 + 0.6 * k)
        for k, name in enumerate(t for s, t in links if s == stage.name):
            positions[name] = (x + 1.5, side * (1.0 + 0.6 * k))
    return positions
