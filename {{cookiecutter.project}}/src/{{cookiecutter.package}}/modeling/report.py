"""``docs/model_report.md`` of a run (TDSP model report), written from its metrics and the tracking store."""

from datetime import datetime
from pathlib import Path

import pandas as pd

from ..core import gap
from ..core.docs import point_at_newest
from ..core.formatting import markdown_table, relative_link, with_interval
from ..core.run_folder import RunFolder


def _figure(run: RunFolder, name: str, document: Path) -> str:
    return f"![{name}]({relative_link(run.figure(name), document)})"


def earlier_runs(tracker, limit: int = 10) -> pd.DataFrame:
    """The newest runs of this project in the tracking store that reached evaluation, this one included."""
    experiment = tracker.client.get_run(tracker.run_id).info.experiment_id
    runs = tracker.client.search_runs(
        [experiment], "metrics.test_accuracy > -1 and tags.mlflow.parentRunId IS NULL", max_results=limit,
        order_by=["attributes.start_time DESC"],
    )  # fmt: skip
    return pd.DataFrame(
        [
            {
                "run": r.info.run_name + (" (this run)" if r.info.run_id == tracker.run_id else ""),
                "started": datetime.fromtimestamp(r.info.start_time / 1000).strftime("%Y-%m-%d %H:%M"),
                "chosen": r.data.tags.get("chosen_model", ""),
                "val_accuracy": round(r.data.metrics.get("val_accuracy", float("nan")), 4),
                "test_accuracy": round(r.data.metrics["test_accuracy"], 4),
                "test_accuracy 95%": "[{:.4f}, {:.4f}]".format(
                    r.data.metrics.get("test_accuracy_ci_low", float("nan")),
                    r.data.metrics.get("test_accuracy_ci_high", float("nan")),
                ),
                "test_auc": round(r.data.metrics.get("test_auc", float("nan")), 4),
            }
            for r in runs
        ]
    )


def write_model_report(run: RunFolder, metrics, tracker) -> Path:
    """Candidates, the chosen model, test metrics with intervals, per class, calibration, earlier runs."""
    path = run.model_report
    candidates = pd.DataFrame(metrics.candidates_on_test).T.rename_axis("candidate").round(4)
    per_class = pd.DataFrame(
        {
            name: {
                "precision": with_interval(v["precision"], v["precision_ci"]),
                "recall": with_interval(v["recall"], v["recall_ci"]),
                "support": v["support"],
            }
            for name, v in metrics.per_class.items()
        }
    ).T.rename_axis("class")
    sections = [
        f"# Model report\n\nWritten by `03_evaluate` on {datetime.now():%Y-%m-%d %H:%M} from `{run.root}`.",
        f"## Candidates\n\nChosen on validation accuracy: **{Path(metrics.model_dir).name}**. Test scores of every "
        "candidate are for the record only; none of them took part in the choice.\n\n"
        + markdown_table(candidates, index=True),
        "## The chosen model on the test split (used once)\n\n"
        f"{metrics.n_test} test images; 95% stratified bootstrap intervals "
        f"({metrics.bootstrap['resamples']} resamples).\n\n"
        f"- Accuracy: {with_interval(metrics.test_accuracy, metrics.test_accuracy_ci)}\n"
        f"- AUC: {with_interval(metrics.test_auc, metrics.test_auc_ci)}\n"
        f"- Validation accuracy (the choice): {metrics.val_accuracy:.4f}\n"
        f"- Backbone `{metrics.backbone}` at {metrics.resolution} px ({metrics.resize}), classifier "
        f"`{metrics.classifier}`",
        "## Validation against test\n\n" + (gap.flag(metrics.gap) or gap.agreement(metrics.gap)),
        "## Per class\n\n" + markdown_table(per_class, index=True),
        "\n\n".join(_figure(run, name, path) for name in ("confusion_matrix", "roc_curve", "precision_recall")),
        "## Largest errors\n\nThe test images with the largest log-loss: look here first for label noise, "
        "unusual images or a class the model confuses. Below, Grad-CAM heat maps of the chosen model over the worst "
        "of them, for the class it predicted.\n\n"
        + "\n\n".join(_figure(run, name, path) for name in ("largest_losses", "heat_maps")),
        calibration_section(metrics.calibration, path, run),
        "## Earlier runs (tracking store)\n\n" + markdown_table(earlier_runs(tracker)),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    point_at_newest(path)
    return path


def calibration_section(calibration: dict, path: Path, run: RunFolder) -> str:
    """The temperature fitted on validation and what it did there and on test, side by side."""
    effect = pd.DataFrame(gap.calibration_rows(calibration)).set_index("measure")
    return (
        f"## Calibration\n\nTemperature {calibration['temperature']:.3f}, fitted on validation (log-loss); the "
        "exported model serves the calibrated probabilities. Its effect, before -> after, on each split:\n\n"
        + markdown_table(effect, index=True)
        + "\n\n"
        + _figure(run, "reliability", path)
    )
