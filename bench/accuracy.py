"""The yardstick of the model a baked project takes home: transfer recipes compared on real collections.

    .venv/bin/python bench/accuracy.py [--collections DIR] [--only elpv digits ...] [--recipes ...]
                                       [--seeds 0 1 2] [--max-train N] [--max-val N] [--epochs E]
                                       [--resolution R] [--tiny] [--markdown FILE]

Bakes the default project into a temporary folder. Collections: the bundled ELPV cells and scikit-learn's digits,
and, when ``--collections`` (default: ``../shared/datasets`` beside the template) holds them, natural photos
(cats_vs_dogs), MRI slices (brain_tumor_mri) and textures (dtd_textures10). Each is acquired by the project's own
step (checks, duplicate groups, splits: a given ``train/``/``test/`` layout is kept) with the split seed fixed at 0;
``--seeds`` drive only the training's randomness. ``--max-train`` keeps a seeded, class-stratified share of the
training split (validation and test stay whole unless ``--max-val``): a budget, said in the report.

Rows, all measured in one run on the same images, network (the default backbone) and epochs:

* probe rows: the linear probe on pooled features at the probe resolution (224 px), one per pooling, and ``auto``
  as the project chooses it on validation (today's: average or bilinear; now: multistage too).
* ``tutorial`` (the baseline): PyTorch's transfer-learning tutorial written out: a new head, SGD momentum 0.9,
  lr 1e-3, step decay x0.1 at 7/9 of the epochs, horizontal flips only, every layer trained, best validation epoch.
* ``fastai``: fastai's ``fine_tune`` schedule written out (fastai 2.8 installs beside this torch, but drives its own
  data pipeline; the schedule is what differs): one frozen epoch of one-cycle (pct_start 0.99) at 2e-3, then every
  layer at half that rate with discriminative rates lr/100..lr, one-cycle (pct_start 0.3, div 5), AdamW
  (weight decay 0.01), the project's augmentation, the last epoch kept (as fastai does).
* ``today``: the fine-tuning default before this benchmark (random head, one learning rate, label smoothing 0.1,
  the training flips averaged at prediction whatever validation says).
* each candidate alone on top of ``today``: ``lp_ft`` (head from a probe), ``disc_lr`` (discriminative rates),
  ``ema`` (weight average as a checkpoint candidate), ``no_smoothing``, and, on ``today``'s trained network,
  ``views`` (test-time views chosen on validation), ``fixres`` (prediction resolution chosen on validation),
  ``ensemble`` (the probe's and the network's calibrated probabilities averaged, weight chosen on validation).
* ``new``: the project's fine-tuning defaults as they are now; ``new+ensemble``: the pipeline's own steps (the
  probe with its pooling chosen on validation, ``new``, ``build_ensemble``); ``shipped``: the candidate the
  evaluation notebook would choose among the three on validation, the model a project takes home.

Every choice inside a recipe is made on validation; test is scored once per recipe. Prints one JSON object
(per collection and recipe: validation and test accuracy, mean and spread over seeds, balanced accuracy, AUC for
two classes, seconds of fine-tuning; the wall time of the run) and writes the markdown table to ``--markdown``.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SAMPLES = common.TEMPLATE / "{{cookiecutter.project}}" / "src" / "{{cookiecutter.package}}" / "acquisition" / "samples"
SHARED = common.TEMPLATE.parent / "shared" / "datasets"
FOLDERS = ("cats_vs_dogs", "brain_tumor_mri", "dtd_textures10")
TRAINED = ("tutorial", "fastai", "today", "lp_ft", "disc_lr", "ema", "no_smoothing", "new")
POST_HOC = ("views", "fixres", "ensemble", "new+ensemble", "shipped")
RECIPES = (*TRAINED, *POST_HOC)
FEATURE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tdsp-bench-features"


# ---- collections -------------------------------------------------------------------------------------------------


def digits_folder(dest: Path) -> Path:
    """scikit-learn's digits as the project's sample writes them (the default bake keeps only ELPV's writer)."""
    spec = importlib.util.spec_from_file_location("digits_sample", SAMPLES / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not (dest / ".complete").exists():
        module.write(dest)
        (dest / ".complete").touch()
    return dest


def acquired(name: str, source: Path | None, work: Path, sample: str = "") -> pd.DataFrame:
    """The collection's manifest as the project's acquisition step splits it (split seed 0)."""
    from solar_cell_inspection.acquisition.steps import acquire
    from solar_cell_inspection.core.config import DataConfig
    from solar_cell_inspection.core.run_folder import RunFolder

    run = RunFolder.open(work / name / "run")
    review = str(work / name / "no_review.csv")
    cfg = DataConfig(data_dir=str(source or ""), sample=sample, labels_review=review, seed=0)
    with contextlib.redirect_stdout(sys.stderr):
        acquire(cfg, run)
    return run.read_manifest()


def write_manifest(manifest: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """The (capped) manifest as the run's, so the pipeline's steps read the same images as the recipes."""
    from solar_cell_inspection.acquisition.manifest import MANIFEST_COLUMNS
    from solar_cell_inspection.core.run_folder import RunFolder

    manifest.reindex(columns=MANIFEST_COLUMNS).to_csv(RunFolder.open(run_dir).manifest, index=False)
    return manifest


def capped(manifest: pd.DataFrame, split: str, limit: int) -> pd.DataFrame:
    """At most ``limit`` images of ``split``, a seeded class-stratified share; other splits untouched."""
    rows = manifest[manifest.split == split]
    if not limit or len(rows) <= limit:
        return manifest
    share, rng = limit / len(rows), np.random.default_rng(0)
    picked = [
        rng.choice(idx, max(1, round(len(idx) * share)), replace=False) for idx in rows.groupby("label").groups.values()
    ]
    kept = rows.loc[np.concatenate(picked)]
    return pd.concat([manifest[manifest.split != split], kept]).sort_values("path").reset_index(drop=True)


# ---- scoring -----------------------------------------------------------------------------------------------------


def scores(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    predicted = probs.argmax(1)
    out = {
        "accuracy": float((predicted == y).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
    }
    if probs.shape[1] == 2 and len(np.unique(y)) == 2:
        out["auc"] = float(roc_auc_score(y, probs[:, 1]))
    return out


def labels_of(manifest: pd.DataFrame, split: str, classes: list[str]) -> np.ndarray:
    return manifest[manifest.split == split].label.map({c: i for i, c in enumerate(classes)}).to_numpy()


def predict(model, config: dict, manifest: pd.DataFrame, split: str) -> np.ndarray:
    from solar_cell_inspection.modeling.model import predict_paths

    rows = manifest[manifest.split == split]
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115 (progress bars)
        return predict_paths(model, list(rows.path), config["resolution"], config["resize"])


# ---- probe rows --------------------------------------------------------------------------------------------------


def probe_rows(manifest: pd.DataFrame, classes: list[str], resolution: int, poolings: list[str]) -> dict[str, dict]:
    """One probe per pooling on cached features (C chosen on validation); ``auto`` rows choose on validation."""
    from solar_cell_inspection.core.config import ProbeConfig
    from solar_cell_inspection.modeling import features, probe

    cfg = ProbeConfig(resolution=resolution)
    y = manifest.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    split = manifest.split.to_numpy()
    fitted = {}
    for pooling in poolings:
        spec = features.FeatureSpec(cfg.backbone, resolution, cfg.weights, pooling, cfg.resize, cfg.batch_size)
        with contextlib.redirect_stdout(sys.stderr):
            x = features.featurize(list(manifest.path), spec, list(manifest.sha256), FEATURE_CACHE)
        result = probe.fit_probe(
            x[split == "train"], y[split == "train"], x[split == "val"], y[split == "val"], cfg.c_grid
        )
        fitted[pooling] = {
            "val_probs": probe.probabilities(result.pipeline, x[split == "val"]),
            "test_probs": probe.probabilities(result.pipeline, x[split == "test"]),
            "val_accuracy": result.val_accuracy,
            "C": result.best_c,
        }
    rows = {f"probe_{p}": fitted[p] for p in poolings}
    for name, allowed in (("probe_auto_today", ("average", "bilinear")), ("probe_auto_new", tuple(poolings))):
        pick = max((p for p in poolings if p in allowed), key=lambda p: fitted[p]["val_accuracy"])
        rows[name] = {**fitted[pick], "pooling": pick}
    return rows


# ---- fine-tuning recipes -----------------------------------------------------------------------------------------


def today_config(base):
    """The fine-tuning defaults before this benchmark, spelled out."""
    return replace(
        base,
        head_init="random",
        backbone_lr_scale=1.0,
        ema_decay=0.0,
        label_smoothing=0.1,
        test_views="none",
        eval_scales=(1.0,),
    )


def parse_variant(text: str) -> tuple[str, dict]:
    """'lowlr:learning_rate=3e-4,ema_decay=0.99' -> ('lowlr', {...}): a recipe of the project's defaults changed."""
    import ast

    name, _, settings = text.partition(":")
    pairs = [item.split("=", 1) for item in settings.split(",") if item]
    return name, {key: ast.literal_eval(value) for key, value in pairs}


def project_recipe(name: str, base, sample: str, variants: dict | None = None):
    """The project's own fine-tuning with the recipe's settings, and the views/resolution step it takes."""
    if variants and name in variants:
        return replace(base, **variants[name])
    today = today_config(base)
    flips = base.with_data_defaults(sample).flips
    configs = {
        "today": replace(
            today, test_views=flips
        ),  # today's views: the training flips, applied whatever validation says
        "lp_ft": replace(today, head_init="probe"),
        "disc_lr": replace(today, backbone_lr_scale=0.1),
        "ema": replace(today, ema_decay=0.99),
        "no_smoothing": replace(today, label_smoothing=0.0),
        "new": base,
    }
    return configs[name]


def run_project_recipe(cfg, manifest: pd.DataFrame, sample: str, out: Path) -> tuple[object, dict, float]:
    from solar_cell_inspection.modeling import train
    from solar_cell_inspection.modeling.model import load_classifier

    cfg = cfg.with_data_defaults(sample)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        train.fine_tune(manifest, cfg, out, sample)
        views = train.views_allowed(cfg.flips) if cfg.test_views == "auto" else [cfg.test_views]
        config = train.choose_views_and_resolution(out, manifest, views, cfg.eval_resolutions())
    seconds = time.perf_counter() - started
    model, config = load_classifier(out)
    return model, config, seconds


class MemoryImages:
    """The split's images decoded once at the training resolution (uint8 NHWC) with integer labels."""

    def __init__(self, manifest: pd.DataFrame, split: str, classes: list[str], resolution: int, resize: str) -> None:
        from solar_cell_inspection.core.images import load_batch

        rows = manifest[manifest.split == split]
        self.images = load_batch(list(rows.path), resolution, resize).astype(np.uint8)  # NCHW 0-255
        self.labels = labels_of(manifest, split, classes)

    def batches(self, size: int, rng: np.random.Generator | None = None):
        order = rng.permutation(len(self.labels)) if rng is not None else np.arange(len(self.labels))
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            yield self.images[rows], self.labels[rows]


def plain_accuracy(model, data: MemoryImages) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for images, labels in data.batches(64):
            correct += int((model.logits(torch.from_numpy(images).float()).argmax(1).numpy() == labels).sum())
    return correct / len(data.labels)


def plain_loop(name: str, base, manifest, classes, sample: str, seed: int) -> tuple[object, dict, float]:
    """The tutorial's or fastai's schedule in a plain torch loop over the project's network."""
    import torch
    from solar_cell_inspection.modeling.augment import augment_batch, build_augmenter
    from solar_cell_inspection.modeling.model import new_classifier

    cfg = base.with_data_defaults(sample)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_set = MemoryImages(manifest, "train", classes, cfg.resolution, cfg.resize)
    val_set = MemoryImages(manifest, "val", classes, cfg.resolution, cfg.resize)
    model = new_classifier(cfg.backbone, len(classes), cfg.resolution, weights=cfg.weights)
    steps_per_epoch = -(-len(train_set.labels) // cfg.batch_size)
    phases = (
        tutorial_phases(model, cfg, steps_per_epoch)
        if name == "tutorial"
        else fastai_phases(model, cfg, steps_per_epoch)
    )
    augmenter = None if name == "tutorial" else build_augmenter(cfg.flips, cfg.augment_strength, seed=seed)
    criterion = torch.nn.CrossEntropyLoss()
    best, best_state, epoch = -1.0, None, 0
    started = time.perf_counter()
    for optimizer, scheduler, epochs, trainable in phases:
        for p in model.parameters():
            p.requires_grad_(trainable(p))
        for _ in range(epochs):
            model.train()
            for images, labels in train_set.batches(cfg.batch_size, rng):
                batch = torch.from_numpy(images).float()
                if augmenter is None:  # the tutorial: horizontal flips only
                    flip = torch.from_numpy(rng.random(len(batch)) < 0.5)
                    batch[flip] = batch[flip].flip(3)
                else:
                    hwc = augment_batch(augmenter, np.ascontiguousarray(images.transpose(0, 2, 3, 1)))
                    batch = torch.from_numpy(hwc).permute(0, 3, 1, 2).float()
                loss = criterion(model.logits(batch), torch.from_numpy(labels))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            epoch += 1
            accuracy = plain_accuracy(model, val_set)
            print(f"{name} epoch {epoch}: validation {accuracy:.4f}", file=sys.stderr)
            if name == "fastai" or accuracy > best:  # fastai keeps the last epoch; the tutorial its best
                best, best_state = accuracy, {k: v.clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    config = {"resolution": cfg.resolution, "resize": cfg.resize, "classes": classes, "val_accuracy": best}
    return model.eval(), config, seconds


def tutorial_phases(model, cfg, steps_per_epoch: int) -> list:
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step_at = max(1, round(cfg.epochs * 7 / 9)) * steps_per_epoch  # StepLR(7, 0.1) of 25 epochs, scaled to ours
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_at, gamma=0.1)
    return [(optimizer, scheduler, cfg.epochs, lambda p: True)]


def fastai_phases(model, cfg, steps_per_epoch: int) -> list:
    """``fine_tune(epochs - 1, base_lr=2e-3, freeze_epochs=1)``: head alone (batch norm trained too, as fastai's
    freeze does), then everything at discriminative rates. Three groups: early body, late body, head."""
    import torch

    _, blocks = model.backbone.stem_and_blocks()
    late = {id(p) for block in blocks[len(blocks) // 2 :] for p in block.parameters()}
    head = {id(p) for p in model.head.parameters()}
    norms = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for p in m.parameters()
    }
    groups = [
        [p for p in model.parameters() if id(p) not in late | head],
        [p for p in model.parameters() if id(p) in late],
        list(model.head.parameters()),
    ]

    def cycle(lrs, epochs, pct, div):
        optimizer = torch.optim.AdamW(
            [{"params": g, "lr": lr} for g, lr in zip(groups, lrs)], weight_decay=0.01, betas=(0.9, 0.99)
        )
        total = max(1, epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lrs,
            total_steps=total,
            pct_start=pct,
            div_factor=div,
            final_div_factor=1e5 / div,
            base_momentum=0.85,
            max_momentum=0.95,
        )
        return optimizer, scheduler

    base_lr = 2e-3
    frozen = (*cycle([base_lr] * 3, 1, 0.99, 25.0), 1, lambda p: id(p) in head or id(p) in norms)
    lr = base_lr / 2
    unfrozen = (*cycle([lr / 100, lr / 10, lr], cfg.epochs - 1, 0.3, 5.0), cfg.epochs - 1, lambda p: True)
    return [frozen, unfrozen] if cfg.epochs > 1 else [frozen]


def ensemble(val_a, test_a, val_b, test_b, y_val) -> dict:
    """Calibrated probabilities of two models averaged, the second's share chosen on validation: the product's
    grid and tie rule (``modeling.ensemble``), on probabilities already computed."""
    from solar_cell_inspection.modeling.calibration import apply_temperature, fit_temperature
    from solar_cell_inspection.modeling.ensemble import WEIGHT_GRID, accuracy, choose_weight

    val_a, test_a = (apply_temperature(p, fit_temperature(y_val, val_a)) for p in (val_a, test_a))
    val_b, test_b = (apply_temperature(p, fit_temperature(y_val, val_b)) for p in (val_b, test_b))
    w = choose_weight({w: accuracy(y_val, (1 - w) * val_a + w * val_b) for w in WEIGHT_GRID})
    return {"val_probs": (1 - w) * val_a + w * val_b, "test_probs": (1 - w) * test_a + w * test_b, "weight": w}


# ---- one collection ----------------------------------------------------------------------------------------------


@dataclass
class Collection:
    """One collection's images and what every recipe on it shares."""

    name: str
    manifest: pd.DataFrame
    sample: str  # the bundled sample it is ("" for a folder): settles 'auto' augmentation
    probes: dict[str, dict]
    y_val: np.ndarray
    record: Callable


def one_collection(name: str, manifest: pd.DataFrame, sample: str, args, work: Path) -> dict:
    from solar_cell_inspection.core.config import FineTuneConfig

    classes = sorted(manifest.label.unique())
    y_val, y_test = labels_of(manifest, "val", classes), labels_of(manifest, "test", classes)
    poolings = ["average", "bilinear", "multistage"]
    probes = probe_rows(manifest, classes, args.probe_resolution, poolings)
    results: dict[str, list[dict]] = {}

    def record(recipe: str, val_probs, test_probs, seconds: float | None, **extra) -> None:
        row = {"val_" + k: v for k, v in scores(y_val, val_probs).items()}
        row.update({"test_" + k: v for k, v in scores(y_test, test_probs).items()}, seconds=seconds, **extra)
        results.setdefault(recipe, []).append(row)
        print(f"{name} {recipe}: val {row['val_accuracy']:.4f} test {row['test_accuracy']:.4f}", file=sys.stderr)

    for key, p in probes.items():
        record(key, p["val_probs"], p["test_probs"], None, **{k: v for k, v in p.items() if k in ("C", "pooling")})
    base = FineTuneConfig(resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size)
    for seed in args.seeds:
        cfg = replace(base, seed=seed, resume=False)
        kept = {}
        wanted = [r for r in TRAINED if r in args.recipes or (r == "today" and set(POST_HOC) & set(args.recipes))]
        for recipe in wanted + list(args.variants):
            out = work / name / f"{recipe}-{seed}"
            if recipe in ("tutorial", "fastai"):
                model, config, seconds = plain_loop(recipe, cfg, manifest, classes, sample, seed)
            else:
                recipe_cfg = project_recipe(recipe, cfg, sample, args.variants)
                model, config, seconds = run_project_recipe(recipe_cfg, manifest, sample, out)
            val_probs, test_probs = predict(model, config, manifest, "val"), predict(model, config, manifest, "test")
            kept[recipe] = (val_probs, test_probs, seconds, out)
            if recipe in args.recipes or recipe in args.variants:
                record(recipe, val_probs, test_probs, seconds, tta=config.get("tta"), resolution=config["resolution"])
        if "today" in kept:
            post_hoc(Collection(name, manifest, sample, probes, y_val, record), cfg, kept["today"], args)
        if "new+ensemble" in args.recipes and "new" in kept:
            as_the_pipeline_does(work / name / "run", kept["new"], args, record)
    return summarize(results)


def post_hoc(collection: Collection, cfg, today: tuple, args) -> None:
    """Candidates applied to ``today``'s trained network: views or resolution chosen on validation, the ensemble."""
    from solar_cell_inspection.modeling import train
    from solar_cell_inspection.modeling.model import load_classifier

    val_probs, test_probs, seconds, out = today
    manifest, record = collection.manifest, collection.record
    flips = cfg.with_data_defaults(collection.sample).flips
    for recipe, views, scales in (("views", train.views_allowed(flips), (1.0,)), ("fixres", ["none"], (1.0, 1.2, 1.4))):
        if recipe not in args.recipes:
            continue
        copy = out.parent / f"{recipe}-{cfg.seed}"
        shutil.copytree(out, copy, dirs_exist_ok=True)
        config = json.loads((copy / "model.json").read_text())
        config.update(
            tta="none", resolution=config["training_resolution"], val_accuracy=config["val_accuracy_without_tta"]
        )
        (copy / "model.json").write_text(json.dumps(config))
        resolutions = replace(cfg, eval_scales=scales).eval_resolutions()
        with contextlib.redirect_stdout(sys.stderr):
            train.choose_views_and_resolution(copy, manifest, views, resolutions)
        model, config = load_classifier(copy)
        record(
            recipe,
            predict(model, config, manifest, "val"),
            predict(model, config, manifest, "test"),
            seconds,
            tta=config["tta"],
            resolution=config["resolution"],
        )
    if "ensemble" in args.recipes:
        probe = collection.probes["probe_auto_today"]
        mixed = ensemble(probe["val_probs"], probe["test_probs"], val_probs, test_probs, collection.y_val)
        record("ensemble", mixed["val_probs"], mixed["test_probs"], seconds, weight=mixed["weight"])


def as_the_pipeline_does(run_dir: Path, new: tuple, args, record) -> None:
    """The pipeline's own modeling steps on the collection: the probe (pooling chosen on validation), the ``new``
    fine-tuned network, the ensemble of both (``build_ensemble``), and the candidate ``choose_and_evaluate`` would
    ship (best validation accuracy): rows ``new+ensemble`` and ``shipped``."""
    from solar_cell_inspection.core.config import ProbeConfig
    from solar_cell_inspection.core.run_folder import ENSEMBLE, FINE_TUNED, LINEAR_PROBE, RunFolder
    from solar_cell_inspection.modeling import steps
    from solar_cell_inspection.modeling.evaluate import candidates
    from solar_cell_inspection.modeling.model import load_classifier

    run = RunFolder.open(run_dir)
    manifest = run.read_manifest()
    seconds, fine_tuned = new[2], new[3]
    with contextlib.redirect_stdout(sys.stderr):
        if not run.model(LINEAR_PROBE).is_dir():  # deterministic: once per collection
            steps.train_probe(ProbeConfig(resolution=args.probe_resolution, feature_cache=str(FEATURE_CACHE)), run)
        shutil.rmtree(run.model(FINE_TUNED), ignore_errors=True)
        shutil.copytree(fine_tuned, run.model(FINE_TUNED))
        steps.build_ensemble(run)
    for recipe, folder in (("new+ensemble", run.model(ENSEMBLE)), ("shipped", Path(candidates(run.models)[0]["dir"]))):
        model, config = load_classifier(folder)
        val_probs, test_probs = predict(model, config, manifest, "val"), predict(model, config, manifest, "test")
        record(recipe, val_probs, test_probs, seconds, model=folder.name, resolution=config["resolution"])


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per recipe: each figure's mean and spread (max - min) over seeds, and the rows themselves."""
    out = {}
    for recipe, rows in results.items():
        figures = {}
        for key in rows[0]:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
            if values and key not in ("resolution", "weight", "C"):
                figures[key] = round(float(np.mean(values)), 4)
                figures[key + "_spread"] = round(float(np.max(values) - np.min(values)), 4)
        out[recipe] = {**figures, "seeds": len(rows), "runs": rows}
    return out


def markdown(report: dict) -> str:
    collections = list(report["collections"])
    recipes = [r for r in report["recipe_order"] if any(r in report["collections"][c] for c in collections)]
    head = "| recipe | " + " | ".join(collections) + " | mean test |\n|---|" + "---|" * (len(collections) + 1) + "\n"
    lines = []
    for recipe in recipes:
        cells, tests = [], []
        for c in collections:
            row = report["collections"][c].get(recipe)
            if not row:
                cells.append("")
                continue
            tests.append(row["test_accuracy"])
            spread = f" ±{row['test_accuracy_spread'] / 2:.3f}" if row["seeds"] > 1 else ""
            cells.append(f"{row['val_accuracy']:.3f} / {row['test_accuracy']:.3f}{spread}")
        mean = f"{np.mean(tests):.4f}" if len(tests) == len(collections) else ""
        lines.append(f"| {recipe} | " + " | ".join(cells) + f" | {mean} |")
    note = "cells: validation / test accuracy (mean over seeds; ± half the spread between seeds)\n\n"
    return note + head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", type=Path, default=SHARED)
    parser.add_argument("--only", nargs="+", default=None, help="collection names (default: every one found)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-train", type=int, default=0, help="training images kept per collection (0: all)")
    parser.add_argument("--max-val", type=int, default=0, help="validation images kept per collection (0: all)")
    parser.add_argument("--epochs", type=int, default=9, help="the demo profile's")
    parser.add_argument("--resolution", type=int, default=160, help="fine-tuning resolution (the demo profile's)")
    parser.add_argument("--probe-resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="a few digits, one seed, one epoch (the tests' run)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,...: the defaults changed")
    parser.add_argument("--partial", type=Path, default=None, help="the report so far, after each collection")
    args = parser.parse_args()
    args.variants = dict(parse_variant(v) for v in args.variant)
    if args.tiny:
        args.only, args.seeds, args.max_train, args.max_val = args.only or ["digits"], [0], 24, 24
        args.epochs, args.resolution, args.probe_resolution = 1, 32, 32
        if args.recipes == list(RECIPES):  # the knobs' own rows are config variants the unit tests cover
            args.recipes = [r for r in RECIPES if r not in ("lp_ft", "disc_lr", "ema", "no_smoothing")]
    load, started = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        work = Path(tmp)
        common.bake(work / "bake")
        os.chdir(work / "bake" / "solar-cell-inspection")  # the project's relative paths (data/raw) land here
        report = run_collections(args, work)
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        report["machine"] = common.machine(load)
    if args.markdown:
        args.markdown.write_text(markdown(report))
    print(markdown(report), file=sys.stderr)
    common.print_report(report)


def run_collections(args, work: Path) -> dict:
    sources = {"elpv": (None, "elpv")}
    sources.update({n: (args.collections / n, "") for n in FOLDERS if (args.collections / n).is_dir()})
    sources["digits"] = (digits_folder(work / "digits"), "")
    names = [n for n in sources if args.only is None or n in args.only]
    report = {"collections": {}, "recipe_order": [], "images": {}}
    report["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    for name in names:
        source, sample = sources[name]
        manifest = capped(capped(acquired(name, source, work, sample), "train", args.max_train), "val", args.max_val)
        if args.tiny:
            manifest = capped(manifest, "test", 24)
        write_manifest(manifest, work / name / "run")
        report["images"][name] = manifest.split.value_counts().to_dict()
        report["collections"][name] = one_collection(name, manifest, sample, args, work)
        report["recipe_order"] = list(report["collections"][names[0]])
        if args.partial:
            args.partial.write_text(json.dumps(report, default=str))
    return report


if __name__ == "__main__":
    main()
