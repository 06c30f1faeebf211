"""The pipeline as a graph, declared once: each stage is one notebook (and the step functions it calls), with the
run files it reads and writes, named through the run folder. Which stage feeds which is derived from those files,
never listed a second time.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .run_folder import ENSEMBLE, FINE_TUNED, LINEAR_PROBE, RunFolder


@dataclass(frozen=True)
class Stage:
    name: str  # the notebook's name without .ipynb; also its results' STEP
    folder: str  # the notebook's folder under code/
    command: str  # its stage command (``python -m <package> <command>``), or a short name
    config: str  # the config class in ``core.config`` its parameters fill, "" for none
    reads: Callable[[RunFolder], tuple[Path, ...]]  # run files whose content the stage's result depends on
    writes: Callable[[RunFolder], tuple[Path, ...]]  # run files it makes (figures and executed notebooks aside)

    @property
    def notebook(self) -> str:
        return f"{self.folder}/{self.name}.ipynb"


def _results(*steps: str) -> Callable[[RunFolder], tuple[Path, ...]]:
    return lambda run: tuple(run.results_file(step) for step in steps)


STAGES: tuple[Stage, ...] = (
    Stage(
        "01_acquire_data",
        "01_data_acquisition_and_understanding",
        "acquire",
        "DataConfig",
        reads=lambda run: (),  # the images and the label review file: outside the run (``inputs.data_source``)
        writes=lambda run: (run.scan, run.manifest, run.results_file("01_acquire_data")),
    ),
    Stage(
        "02_explore_and_review",
        "01_data_acquisition_and_understanding",
        "review",
        "ReviewConfig",
        reads=lambda run: (run.manifest, run.results_file("01_acquire_data")),
        writes=lambda run: (run.label_errors, run.data_report, run.results_file("02_explore_and_review")),
    ),
    Stage(
        "01_linear_probe",
        "02_modeling",
        "probe",
        "ProbeConfig",
        reads=lambda run: (run.manifest,),
        writes=lambda run: (run.features, run.model(LINEAR_PROBE), run.results_file("01_linear_probe")),
    ),
    Stage(
        "02_fine_tune",
        "02_modeling",
        "train",
        "FineTuneConfig",
        reads=lambda run: (run.manifest, run.results_file("01_acquire_data")),
        writes=lambda run: (run.model(FINE_TUNED), run.results_file("02_fine_tune")),
    ),
    Stage(
        "03_evaluate",
        "02_modeling",
        "evaluate",
        "EvaluateConfig",
        reads=lambda run: (run.manifest, run.models),  # with the ensemble it writes there: its key is taken after
        writes=lambda run: (
            run.model(ENSEMBLE),
            run.metrics,
            run.test_predictions,
            run.model_report,
            run.results_file("03_evaluate"),
        ),
    ),
    Stage(
        "04_compare_runs",
        "02_modeling",
        "compare",
        "",
        reads=lambda run: (run.metrics, run.sweeps),
        writes=_results("04_compare_runs"),
    ),
    Stage(
        "01_export",
        "03_deployment",
        "export",
        "DeployConfig",
        reads=lambda run: (run.manifest, run.models, run.metrics, run.results_file("01_acquire_data")),
        writes=lambda run: (run.exported_model, run.exit_report, run.results_file("01_export")),
    ),
    Stage(
        "02_batch_score",
        "03_deployment",
        "score",
        "",
        reads=lambda run: (run.manifest, run.exported_model),
        writes=lambda run: (run.test_images, run.scores, run.results_file("02_batch_score")),
    ),
    Stage(
        "03_web_service",
        "03_deployment",
        "service",
        "DeployConfig",
        reads=lambda run: (run.manifest, run.exported_model),
        writes=_results("03_web_service"),
    ),
)


def stage(name: str) -> Stage:
    """A stage by its notebook name (``02_fine_tune``) or its command (``train``)."""
    for candidate in STAGES:
        if name in (candidate.name, candidate.command):
            return candidate
    names = ", ".join(f"{s.name} ({s.command})" for s in STAGES)
    raise ValueError(f"Unknown stage {name!r}. The stages are {names}.")


def feeds(run: RunFolder) -> dict[str, list[str]]:
    """Each stage and the earlier stages whose files it reads: the graph's edges, derived from reads and writes."""
    made_by: dict[Path, str] = {}
    edges: dict[str, list[str]] = {}
    for current in STAGES:
        read = current.reads(run)
        edges[current.name] = sorted(
            {maker for path, maker in made_by.items() for r in read if path == r or path.is_relative_to(r)}
        )
        made_by.update({path: current.name for path in current.writes(run)})
    return edges


def downstream(run: RunFolder, names: set[str]) -> set[str]:
    """The stages that read, directly or through others, what ``names`` write."""
    found, edges = set(names), feeds(run)
    for current in STAGES:
        if found & set(edges[current.name]):
            found.add(current.name)
    return found - set(names)


def mermaid(run: RunFolder, states: dict[str, str] | None = None, colours: dict[str, str] | None = None) -> str:
    """The graph as Mermaid (GitHub and JupyterLab draw it): stages as boxes, with their state and its colour when
    given, and the run files between them as rounded nodes."""
    lines = ["flowchart LR"]
    lines += [f"  classDef {_css(state)} fill:{colour},stroke:#555" for state, colour in (colours or {}).items()]
    for stage in STAGES:
        state = (states or {}).get(stage.name)
        label = f"{stage.name}<br/>{state}" if state else stage.name
        lines.append(f'  {_id(stage.name)}["{label}"]' + (f":::{_css(state)}" if state and colours else ""))
    for name in sorted({n for edge in edges(run) for n in edge} - {s.name for s in STAGES}):
        lines.append(f'  {_id(name)}(["{name}"])')
    lines += [f"  {_id(source)} --> {_id(target)}" for source, target in edges(run)]
    return "\n".join(lines) + "\n"


def edges(run: RunFolder) -> list[tuple[str, str]]:
    """The run files between stages: stage -> a file it writes that a later stage reads -> that stage (a stage
    reading a folder reads each file written into it). What no stage writes (the images, the label review file,
    sweeps/) enters as an input of its reader."""
    edges = [("images", STAGES[0].name), ("labels_review.csv", STAGES[0].name)]
    writer: dict[Path, str] = {}
    for stage in STAGES:
        for read in stage.reads(run):
            makers = [path for path in writer if path == read or path.is_relative_to(read)]
            edges += [(writer[path], _file(path, run)) for path in makers]
            edges += [(_file(path, run), stage.name) for path in makers or [read]]
        writer.update({path: stage.name for path in stage.writes(run) if path not in writer})
    return list(dict.fromkeys(edges))


def _file(path: Path, run: RunFolder) -> str:
    relative = path.relative_to(run.root).as_posix()
    return relative + ("/" if not relative.endswith((".csv", ".json", ".md", ".npz")) else "")


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def _css(state: str) -> str:
    return state.replace(" ", "_")
