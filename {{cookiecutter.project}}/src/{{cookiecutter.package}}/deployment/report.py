"""``docs/exit_report.md`` of a run (TDSP exit report): what was registered, and how to score and serve it."""

from datetime import datetime
from pathlib import Path

from ..core import gap
from ..core.docs import point_at_newest


def write_exit_report(path: Path, model_dir: Path, metadata: dict, metrics: dict, registered: dict, graph: str) -> Path:
    """The report; ``graph`` is the pipeline's stages and the run files between them, as Mermaid."""
    uri = f"models:/{registered['name']}@{registered['alias']}"
    low, high = metrics.get("test_accuracy_ci", [float("nan")] * 2)
    lines = [
        "# Exit report",
        "",
        f"Written by `01_export` on {datetime.now():%Y-%m-%d %H:%M}.",
        "",
        "## Delivered",
        f"- Model: `{metadata['classifier']}` on `{metadata['backbone']}`, {metadata['resolution']} px "
        f"({metadata['resize']}), classes {', '.join(metadata['classes'])}; folder `{model_dir}` "
        f"(ONNX, metadata, model card).",
        f"- Registered as `{registered['name']}` version {registered['version']}, alias `{registered['alias']}`.",
        f"- Test accuracy {metrics['test_accuracy']:.4f} (95% interval {low:.4f} to {high:.4f}), "
        f"AUC {metrics['test_auc']:.4f}, on {metrics['n_test']} test images used once.",
        *(["", gap.flag(metrics.get("gap"))] if gap.flag(metrics.get("gap")) else []),
        "",
        "## Score and serve",
        "```bash",
        f"python -m {__package__.partition('.')[0]} score --model {uri} --input <folder or CSV> --output scores.csv",
        f"python -m {__package__.partition('.')[0]} serve --model {uri} --port 8000",
        f"python -m {__package__.partition('.')[0]} promote --version {registered['version']}"
        "   # when it should become the champion",
        "```",
        'Both run on ONNX Runtime without PyTorch (`pip install ".[serve]"`); the service has a page at `/`.',
        _int8_line(metadata.get("int8")),
        "",
        "## How the pipeline made it",
        f"Each stage is one notebook; `python -m {__package__.partition('.')[0]} status` says which are up to date "
        "and why the others are not, and `pipeline` runs only those.",
        "",
        "```mermaid",
        graph.rstrip(),
        "```",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    point_at_newest(path)
    return path


def _int8_line(int8: dict | None) -> str:
    if not int8:
        return "- int8: not made (INT8 = False)."
    if int8["val_accuracy_int8"] is None:
        return f"- int8: not made: {int8['reason']}."
    accuracies = f"validation accuracy {int8['val_accuracy_int8']:.4f} vs fp32 {int8['val_accuracy_fp32']:.4f}"
    if int8["kept"]:
        return f"- int8: `model.int8.onnx` kept ({accuracies}); add `--precision int8` to score or serve with it."
    return f"- int8: not kept ({accuracies}, more than 0.5 point lower); score and serve use fp32."
