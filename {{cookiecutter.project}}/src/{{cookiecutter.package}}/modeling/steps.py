"""The steps of stage 2, one function per notebook section that does work.

``01_linear_probe``: ``fit_probes``, ``keep_best_pooling``, ``fold_probe`` (``train_probe`` runs all three).
``02_fine_tune``: ``fine_tune``, ``add_test_time_augmentation``. ``03_evaluate``: ``build_ensemble``,
``choose_and_evaluate``.
Each takes its config (where it has one) and the run folder, and saves typed results there.
"""

import shutil
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..core import gap, plots
from ..core.config import EvaluateConfig, FineTuneConfig, ProbeConfig
from ..core.formatting import with_interval
from ..core.paths import resolve
from ..core.results import AcquisitionResults, FineTuneResults, Metrics, ProbeResults
from ..core.run_folder import ENSEMBLE, FINE_TUNED, LINEAR_PROBE, RunFolder
from ..core.stage_records import record_step
from ..core.tracking import Tracker, parameters
from . import distributed, ensemble, features, pooling, probe, train
from .backbones import backbone_spec, weights_note
from .calibration import apply_temperature, calibrate, expected_calibration_error, log_loss
from .evaluate import accuracy_interval, bootstrap_intervals, candidates, classification_metrics, largest_losses
from .explain import heat_maps
from .model import ImageClassifier, load_classifier, predict_paths, save_classifier
from .report import write_model_report
from .threshold import decide_on_validation

FOLD_TOLERANCE = 1e-4  # largest probability gap allowed between the folded head and scikit-learn


@dataclass
class ProbeFit:
    """The probes of ``fit_probes``, one per pooling, with the data they were fitted on."""

    classes: list[str]
    y: np.ndarray
    split: np.ndarray
    paths: np.ndarray
    x: dict[str, np.ndarray] = field(default_factory=dict)  # pooling -> features
    results: dict[str, probe.ProbeResult] = field(default_factory=dict)  # pooling -> fitted probe

    def summary(self) -> dict[str, dict[str, float]]:
        return probe.pooling_summary(self.results)


@dataclass
class Evaluation:
    """What ``choose_and_evaluate`` measured; the notebook plots from it."""

    metrics: Metrics
    ranked: list[dict]
    y_test: np.ndarray
    probs: np.ndarray  # calibrated, as the exported model gives them
    raw_probs: np.ndarray  # before temperature scaling
    test_paths: list[str]  # in the order of y_test
    model: torch.nn.Module  # the chosen model, for heat maps
    config: dict  # its saved config (classes, resolution, resize, ...)


def fit_probes(cfg: ProbeConfig, run: RunFolder) -> ProbeFit:
    """Pooled features of every image (cached by image hash), and a probe fitted for each pooling tried."""
    manifest = run.read_manifest()
    classes = sorted(manifest.label.unique())
    y = manifest.label.map({name: i for i, name in enumerate(classes)}).to_numpy()
    fit = ProbeFit(classes, y, manifest.split.to_numpy(), manifest.path.to_numpy())
    print(f"{len(manifest)} images, classes {classes}, {cfg.backbone} at {cfg.resolution} px ({cfg.resize})")
    train_rows, val_rows = fit.split == "train", fit.split == "val"
    for name in pooling.candidates(cfg.pooling):
        x = features.featurize_rows(manifest, cfg, run.work, pooling=name)
        fit.x[name] = x
        fit.results[name] = probe.fit_probe(
            x[train_rows], y[train_rows], x[val_rows], y[val_rows], cfg.c_grid, cfg.classifier
        )
    return fit


def keep_best_pooling(run: RunFolder, fit: ProbeFit) -> str:
    """The pooling whose probe did best on validation; its features are kept in the run."""
    chosen = probe.choose_pooling(fit.results)
    np.savez_compressed(run.features, x=fit.x[chosen], y=fit.y, split=fit.split, path=fit.paths)
    result, summary = fit.results[chosen], fit.summary()
    others = ", ".join(f"{p} {s['val_accuracy']:.4f}" for p, s in summary.items() if p != chosen) or "none"
    print(f"pooling {chosen!r} kept: validation accuracy {result.val_accuracy:.4f} (others: {others})")
    print(f"chosen C = {result.best_c:g}")
    return chosen


def fold_probe(cfg: ProbeConfig, run: RunFolder, fit: ProbeFit, chosen: str) -> ProbeResults:
    """The probe folded into a linear layer on the featurizer: one network, saved as the linear_probe candidate.

    The folded network must give scikit-learn's probabilities; a gap means the fold is wrong."""
    result, x_val = fit.results[chosen], fit.x[chosen][fit.split == "val"]
    head = probe.to_linear(result.pipeline)
    with torch.inference_mode():
        folded = torch.softmax(head(torch.from_numpy(x_val)), dim=1).numpy()
    gap = float(np.abs(folded - probe.probabilities(result.pipeline, x_val)).max())
    if gap >= FOLD_TOLERANCE:
        raise RuntimeError(f"The folded head differs from scikit-learn by {gap}: the linear probe cannot be exported.")
    featurizer = pooling.featurizer(cfg.backbone, pooling=chosen, weights=cfg.weights, resolution=cfg.resolution)
    save_classifier(
        ImageClassifier(featurizer, head),
        run.model(LINEAR_PROBE),
        backbone=cfg.backbone,
        resolution=cfg.resolution,
        resize=cfg.resize,
        classes=fit.classes,
        classifier=cfg.classifier,
        pooling=chosen,
        pooling_candidates=fit.summary(),
        C=result.best_c,
        val_accuracy=result.val_accuracy,
        weights_note=weights_note(cfg.backbone, cfg.weights),
    )
    print(f"largest gap between folded head and scikit-learn: {gap:.2e}")
    results = ProbeResults(chosen, fit.summary(), result.best_c, result.val_accuracy, gap, result.curve)
    run.save(results)
    _track_probe(cfg, run, results)
    record_step(run, results.STEP, cfg)
    return results


def _track_probe(cfg: ProbeConfig, run: RunFolder, results: ProbeResults) -> None:
    """A nested run: the probe's parameters, its choice, and its validation curve (step = position in C_GRID)."""
    tracker = Tracker(run)
    child = tracker.child(LINEAR_PROBE)
    tracker.params({**parameters(cfg), "chosen_pooling": results.pooling, "chosen_C": results.best_c}, child)
    tracker.metrics({"val_accuracy": results.val_accuracy}, run_id=child)
    for step, row in enumerate(results.curve):
        curve = {f"curve_{k}": v for k, v in row.items() if k != "C"}
        tracker.metrics({**curve, "curve_C": row["C"]}, step=step, run_id=child)
    tracker.artifacts(run.figure("validation_curve"), "figures", child)


def train_probe(cfg: ProbeConfig, run: RunFolder) -> ProbeResults:
    """The whole of 01_linear_probe."""
    fit = fit_probes(cfg, run)
    return fold_probe(cfg, run, fit, keep_best_pooling(run, fit))


def bundled_sample(run: RunFolder) -> str:
    """The bundled sample this run's images came from ("" for the user's own): it settles 'auto' settings."""
    return run.load(AcquisitionResults).sample if run.has(AcquisitionResults) else ""


def fine_tune(cfg: FineTuneConfig, run: RunFolder) -> train.History:
    """The network retrained end to end on augmented images; the best epoch is saved as the fine_tuned
    candidate. The notebook and ``python -m <package> train`` (alone or under torchrun) run exactly this."""
    cfg = cfg.with_data_defaults(bundled_sample(run))
    print(f"FLIPS={cfg.flips!r} AUGMENT_STRENGTH={cfg.augment_strength}")
    return train.fine_tune(run.read_manifest(), cfg, run.model(FINE_TUNED))


def add_test_time_augmentation(cfg: FineTuneConfig, run: RunFolder, history: train.History) -> FineTuneResults:
    """The test-time views (mirrors averaged at prediction) and the prediction resolution, each chosen on validation
    (``TEST_VIEWS``, ``EVAL_SCALES``); the saved model's validation accuracy re-measured as it will predict."""
    asked, cfg = cfg, cfg.with_data_defaults(bundled_sample(run))
    views = train.views_allowed(cfg.flips) if cfg.test_views == "auto" else [cfg.test_views]
    resolutions = cfg.eval_resolutions() if backbone_spec(cfg.backbone).rescales else [cfg.resolution]
    final = train.choose_views_and_resolution(run.model(FINE_TUNED), run.read_manifest(), views, resolutions)
    before, after = final["val_accuracy_without_tta"], final["val_accuracy"]
    print(
        f"validation accuracy {before:.4f} with one view at {cfg.resolution} px -> {after:.4f} with "
        f"{final['tta']!r} views at {final['resolution']} px (tried: {_tried(final['views_tried'])})"
    )
    chosen = {"test_views": final["tta"], "resolution": final["resolution"]}
    results = FineTuneResults(
        history.best_epoch, after, before, cfg.flips, cfg.augment_strength, history.rows, **chosen
    )
    run.save(results)
    _track_fine_tuning(cfg, run, results)
    record_step(run, results.STEP, asked)  # the settings as asked ('auto' too): what the notebook's key holds
    return results


def _tried(rows: list[dict]) -> str:
    return ", ".join(f"{r['tta']} {r['resolution']} px {r['val_accuracy']:.4f}" for r in rows)


def _track_fine_tuning(cfg: FineTuneConfig, run: RunFolder, results: FineTuneResults) -> None:
    """A nested run: the settings (with 'auto' made concrete), and loss and accuracy per epoch (step = epoch)."""
    tracker = Tracker(run)
    child = tracker.child(FINE_TUNED)
    tracker.params(parameters(cfg), child)
    for row in results.epochs:
        tracker.metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]), run_id=child)
    final = {"val_accuracy_final": results.val_accuracy, "val_accuracy_without_tta": results.val_accuracy_without_tta}
    tracker.metrics({**final, "best_epoch": results.best_epoch}, run_id=child)


def train_fine_tuned(cfg: FineTuneConfig, run: RunFolder) -> FineTuneResults | None:
    """The whole of 02_fine_tune; under torchrun every process trains, the main one then adds the views."""
    history = fine_tune(cfg, run)
    distributed.teardown()  # only after success: after an error torchrun stops the other processes
    return add_test_time_augmentation(cfg, run, history) if distributed.is_main() else None


def build_ensemble(run: RunFolder) -> ensemble.EnsembleFit | None:
    """The linear probe and the fine-tuned network averaged, each calibrated, the fine-tuned network's share chosen
    on validation: saved as the ensemble candidate, which ``choose_and_evaluate`` then ranks with the others. Without
    both members, or when they cannot be averaged (different classes), there is no ensemble candidate (an earlier
    one is removed: it was not made of these members)."""
    members = run.model(LINEAR_PROBE), run.model(FINE_TUNED)
    reason = ensemble.unavailable(*members)
    if reason:
        shutil.rmtree(run.model(ENSEMBLE), ignore_errors=True)
        print(f"ensemble: not built, {reason}")
        return None
    fit = ensemble.fit_ensemble(*members, run.read_manifest())
    save_classifier(fit.model, run.model(ENSEMBLE), **fit.config)
    print(fit.summary())
    _track_ensemble(run, fit)
    return fit


def _track_ensemble(run: RunFolder, fit: ensemble.EnsembleFit) -> None:
    """A nested run like the other candidates': the weight and temperatures chosen, each weight's accuracy."""
    tracker = Tracker(run)
    child = tracker.child(ENSEMBLE)
    members = {f"temperature_{m['name']}": m["temperature"] for m in fit.config["members"]}
    tracker.params({"weight_grid": list(fit.config["weight_grid"]), "chosen_weight": fit.weight, **members}, child)
    tracker.metrics({"val_accuracy": fit.val_accuracy}, run_id=child)
    for step, accuracy in enumerate(fit.config["weight_grid"].values()):
        tracker.metrics({"grid_val_accuracy": accuracy}, step=step, run_id=child)


def choose_and_evaluate(cfg: EvaluateConfig, run: RunFolder) -> Evaluation:
    """The candidate with the best validation accuracy is chosen; its temperature (and threshold, when asked)
    are fitted on validation; then, and only then, the test split is scored (every candidate, for the record);
    ``metrics.json`` and the model report are written."""
    ranked = candidates(run.models)
    chosen = ranked[0]
    model, config = load_classifier(resolve(chosen["dir"]))
    classes = config["classes"]
    manifest = run.read_manifest()
    temperature, calibration, (y_val, val_probs) = calibrate(model, config, manifest)
    test = manifest[manifest.split == "test"]
    y_test = test.label.map({name: i for i, name in enumerate(classes)}).to_numpy()
    raw_probs = predict_paths(model, list(test.path), config["resolution"], config["resize"])
    probs = apply_temperature(raw_probs, temperature)
    calibration["test_ece_before"] = expected_calibration_error(y_test, raw_probs)
    calibration["test_ece_after"] = expected_calibration_error(y_test, probs)
    calibration["test_log_loss_before"] = log_loss(y_test, raw_probs)
    calibration["test_log_loss_after"] = log_loss(y_test, probs)
    _write_test_predictions(run, test, probs, classes)
    scores, intervals = _scores_with_intervals(y_test, probs, classes)
    print(f"chosen: {chosen['name']} (validation accuracy {chosen['val_accuracy']:.4f})")
    print(
        f"test accuracy {with_interval(scores['accuracy'], intervals['accuracy'])}, "
        f"test AUC {with_interval(scores['auc'], intervals['auc'])} (95% bootstrap intervals, {len(test)} images)"
    )
    metrics = Metrics(
        **_headline(scores, intervals, chosen),
        **_counts(manifest),
        **{k: config[k] for k in ("classes", "backbone", "resolution", "resize", "classifier")},
        model_dir=chosen["dir"],
        candidates={c["name"]: c["val_accuracy"] for c in ranked},
        candidates_on_test=_every_candidate_on_test(ranked, scores, test, y_test),
        probe_pooling=_probe_pooling(ranked),
        per_class=scores["per_class"],
        confusion_matrix=scores["confusion_matrix"],
        run_dir=str(run.root),
        bootstrap={"resamples": intervals["resamples"], "level": intervals["level"], "stratified": True, "seed": 0},
        calibration=calibration,
        decision=decide_on_validation(cfg, classes, (y_val, val_probs), (y_test, probs)),
    )
    _judge_gap(metrics, y_val, val_probs)
    run.write_metrics(metrics)
    tracker = _track_evaluation(run, metrics, chosen["name"])
    tracker.params(parameters(cfg))
    tracker.artifacts(write_model_report(run, metrics, tracker), "reports")
    record_step(run, metrics.STEP, cfg)
    return Evaluation(metrics, ranked, y_test, probs, raw_probs, list(test.path), model, config)


def _judge_gap(metrics: Metrics, y_val: np.ndarray, val_probs: np.ndarray) -> None:
    """Validation against test (after the choice, choosing nothing): the chosen model's validation accuracy gets an
    interval by the same bootstrap as test's, and ``core.gap`` judges the two; a raised flag is printed too."""
    metrics.val_accuracy_ci = accuracy_interval(y_val, val_probs)
    val_accuracy = float((val_probs.argmax(axis=1) == y_val).mean())
    metrics.gap = gap.judge(
        val_accuracy, metrics.val_accuracy_ci, metrics.test_accuracy, metrics.test_accuracy_ci, metrics.calibration
    )
    if metrics.gap["flagged"]:
        print(gap.flag(metrics.gap).replace("**", ""))


def _write_test_predictions(run: RunFolder, test: pd.DataFrame, probs: np.ndarray, classes: list[str]) -> None:
    pd.DataFrame({"path": test.path.to_numpy(), "label": test.label.to_numpy()}).assign(
        **{f"p_{name}": probs[:, i] for i, name in enumerate(classes)}
    ).to_csv(run.test_predictions, index=False)


def _scores_with_intervals(y_test: np.ndarray, probs: np.ndarray, classes: list[str]) -> tuple[dict, dict]:
    """The test scores, each class's precision and recall with its bootstrap interval beside it."""
    scores = classification_metrics(y_test, probs, classes)
    intervals = bootstrap_intervals(y_test, probs, classes)
    for name, bounds in intervals["per_class"].items():
        scores["per_class"][name].update(bounds)
    return scores, intervals


def _headline(scores: dict, intervals: dict, chosen: dict) -> dict[str, object]:
    return {
        "test_accuracy": scores["accuracy"],
        "test_auc": scores["auc"],
        "test_accuracy_ci": intervals["accuracy"],
        "test_auc_ci": intervals["auc"],
        "val_accuracy": chosen["val_accuracy"],
    }


def _counts(manifest: pd.DataFrame) -> dict[str, int]:
    return {f"n_{split}": int((manifest.split == split).sum()) for split in ("train", "val", "test")}


def _every_candidate_on_test(ranked: list[dict], scores: dict, test: pd.DataFrame, y_test) -> dict[str, dict]:
    """Each candidate's test scores, recorded after the choice (the chosen one's are ``scores``)."""
    on_test = {ranked[0]["name"]: _summary(ranked[0], scores)}
    for other in ranked[1:]:
        model, config = load_classifier(resolve(other["dir"]))
        probs = predict_paths(model, list(test.path), config["resolution"], config["resize"])
        on_test[other["name"]] = _summary(other, classification_metrics(y_test, probs, config["classes"]))
    return {c["name"]: on_test[c["name"]] for c in ranked}


def _probe_pooling(ranked: list[dict]) -> dict[str, object]:
    probe_config = next((c for c in ranked if c["name"] == LINEAR_PROBE), {})  # absent if only fine-tuned
    return {"chosen": probe_config.get("pooling"), "candidates": probe_config.get("pooling_candidates", {})}


def _track_evaluation(run: RunFolder, metrics: Metrics, chosen: str) -> Tracker:
    """The chosen model's scores on the run; each candidate's own validation and test scores on its nested run."""
    tracker = Tracker(run)
    tracker.metrics({k: getattr(metrics, k) for k in ("test_accuracy", "test_auc", "val_accuracy")})
    for key in ("test_accuracy", "test_auc"):
        low, high = getattr(metrics, f"{key}_ci")
        tracker.metrics({f"{key}_ci_low": low, f"{key}_ci_high": high})
    tracker.tags({"chosen_model": chosen, "backbone": metrics.backbone})
    tracker.metrics({f"calibration_{k}": v for k, v in metrics.calibration.items()})
    for name, scores in metrics.candidates_on_test.items():
        child = tracker.child_of(name)
        if child:
            tracker.metrics({k: v for k, v in scores.items() if k.startswith("test_")}, run_id=child)
            tracker.tags({"chosen": name == chosen}, run_id=child)
    tracker.artifacts(run.metrics)
    return tracker


def explain_errors(run: RunFolder, evaluation: Evaluation, count: int = 6) -> list[np.ndarray]:
    """Grad-CAM heat maps of the chosen model (probe, fine-tuned, or the ensemble: its fine-tuned member's map)
    over its largest test errors, for the class it
    predicted: what in the image drove the wrong answer. Saved as the ``heat_maps`` figure and logged."""
    worst = largest_losses(evaluation.y_test, evaluation.probs, count)
    classes, config = evaluation.metrics.classes, evaluation.config
    predicted = evaluation.probs[worst].argmax(axis=1)
    paths = [evaluation.test_paths[i] for i in worst]
    overlays = heat_maps(evaluation.model, paths, config["resolution"], config["resize"], list(predicted))
    captions = [f"true {classes[evaluation.y_test[i]]}\npred {classes[k]}" for i, k in zip(worst, predicted)]
    title = "Grad-CAM for the predicted class, largest test errors"
    plots.heat_maps(overlays, captions, title, run.figure("heat_maps"))
    Tracker(run).artifacts(run.figure("heat_maps"), "figures")
    return overlays


def _summary(candidate: dict, scores: dict) -> dict[str, float]:
    return {"val_accuracy": candidate["val_accuracy"], "test_accuracy": scores["accuracy"], "test_auc": scores["auc"]}
