"""Fine-tuning: a new head on the pretrained backbone, trained end to end with augmentation.

Flat, small functions: ``build_loaders``, ``train_one_epoch``, ``evaluate``, ``fit``.
On CUDA it uses mixed precision and channels_last; on CPU a seed makes runs repeatable.
"""

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from ..core.config import FineTuneConfig
from ..core.images import load_image
from . import distributed, features, probe
from .augment import augment_batch, build_augmenter
from .backbones import weights_note
from .model import ImageClassifier, Logits, load_classifier, new_classifier, predict_paths, save_classifier

# Decoded images are kept in memory only for a set whose N x R x R x 3 bytes fit in this (per dataset): ELPV's 2,624
# cells take 201 MB at 160 px and 395 MB at 224 px; 10,000 photos at 224 px (1.5 GB) would be decoded every epoch.
CACHE_BYTES = 1 << 30


class ImageFiles(Dataset):
    """uint8 HWC images at a fixed resolution, made square as ``resize`` says, with integer labels.

    Each image is decoded and resized once, in its first epoch, when the whole set fits in ``cache_bytes``: later
    epochs take the same pixels from memory (decoding a PNG and resizing it costs as much as augmenting it). A
    larger set is read from disk every epoch, so memory stays bounded whatever the collection's size. The images
    handed out are read-only views: augmentation works on the batch ``_collate`` stacks, never on the cache."""

    def __init__(
        self, paths: list[str], labels: np.ndarray, resolution: int, resize: str, cache_bytes: int = CACHE_BYTES
    ) -> None:
        self.paths, self.labels, self.resolution, self.resize = paths, labels, resolution, resize
        shape = (len(paths), resolution, resolution, 3)
        # np.empty takes memory pages only as images are written: a process under torchrun fills just its share
        self.cache = np.empty(shape, np.uint8) if np.prod(shape) <= cache_bytes else None
        self.cached = np.zeros(len(paths), dtype=bool)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if self.cache is None:
            return load_image(self.paths[i], self.resolution, self.resize), int(self.labels[i])
        if not self.cached[i]:
            self.cache[i] = load_image(self.paths[i], self.resolution, self.resize)
            self.cached[i] = True
        image = self.cache[i]
        image.flags.writeable = False
        return image, int(self.labels[i])


def _collate(augmenter):
    def collate(items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = np.stack([image for image, _ in items])
        if augmenter is not None:
            images = augment_batch(augmenter, images)
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        return batch, torch.tensor([label for _, label in items])

    return collate


def build_loaders(manifest: pd.DataFrame, classes: list[str], cfg: FineTuneConfig) -> tuple[DataLoader, DataLoader]:
    """Augmented, shuffled train loader and a plain validation loader (num_workers=0: 2-core CPUs).

    Under ``torchrun`` each process gets its own share of both splits."""
    index = {name: i for i, name in enumerate(classes)}
    rank, world = distributed.rank_and_world()

    def dataset(split: str) -> ImageFiles:
        rows = manifest[manifest.split == split]
        return ImageFiles(list(rows.path), rows.label.map(index).to_numpy(), cfg.resolution, cfg.resize)

    seed, batch_size = cfg.seed, cfg.batch_size
    augmenter = build_augmenter(cfg.flips, cfg.augment_strength, seed=seed + rank)
    train_set, val_set = dataset("train"), dataset("val")
    if world > 1:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        train = DataLoader(train_set, batch_size=batch_size, sampler=sampler, collate_fn=_collate(augmenter))
        val_set = Subset(val_set, range(rank, len(val_set), world))  # every image once, across processes
    else:
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(
            train_set, batch_size=batch_size, shuffle=True, collate_fn=_collate(augmenter), generator=generator
        )
    val = DataLoader(val_set, batch_size=batch_size, collate_fn=_collate(None))
    train.augmenter, train.seed = augmenter, seed + rank  # reseeded every epoch (``seed_epoch``)
    return train, val


def seed_epoch(loader: DataLoader, epoch: int) -> None:
    """Every random draw of an epoch (shuffle, augmentation, dropout) from the seed and the epoch alone, so a run
    resumed at epoch k draws exactly what an uninterrupted one draws there."""
    seed = loader.seed + 7919 * epoch
    torch.manual_seed(seed)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    elif loader.generator is not None:
        loader.generator.manual_seed(seed)
    loader.augmenter.seed_(seed)


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0
    finished: bool = False


def device_for(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last)


def make_optimizer(params: list, name: str, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    """``params``: parameters, or parameter groups each with its own ``lr``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"Invalid optimizer {name!r}. Only adamw, sgd are supported.")


def make_schedule(optimizer: torch.optim.Optimizer, name: str, learning_rate: float, total_steps: int):
    """Learning rate per step: one-cycle (warm up, then anneal), cosine annealing, or constant. One-cycle peaks
    each parameter group at its own rate (``param_group_rates``)."""
    if name == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=0.15)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"Invalid schedule {name!r}. Only onecycle, cosine, constant are supported.")


def param_group_rates(model: ImageClassifier, learning_rate: float, scale: float) -> list[dict]:
    """Discriminative learning rates (fastai, ULMFiT): the first block still trained gets ``scale`` times the rate,
    each later block a little more (geometrically), the network's top and the new head the full rate. Early blocks
    hold generic features that a large step would spoil; the head starts from nothing (or from a probe)."""
    _, blocks = model.backbone.parameter_blocks()
    trained = [block for block in blocks[model.backbone.frozen_blocks :]]
    groups, seen = [], set()
    for i, block in enumerate(trained):
        params = [p for p in block if p.requires_grad]
        seen.update(map(id, params))
        groups.append({"params": params, "lr": learning_rate * scale ** ((len(trained) - i) / len(trained))})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    groups.append({"params": rest, "lr": learning_rate})
    return [group for group in groups if group["params"]]


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """'balanced': each class weighs n / (k * count), so rare classes count as much as common ones."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).clip(min=1)
    return torch.tensor(len(labels) / (n_classes * counts), dtype=torch.float32)


@dataclass
class Optimisation:
    """What every training step applies: the optimizer, its learning-rate schedule, the AMP gradient scaler, and the
    weight average (or None) that follows the weights after each step."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    average: AveragedModel | None = None

    def step(self, loss: torch.Tensor, model: nn.Module) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.average is not None:
            self.average.update_parameters(model)


def train_one_epoch(
    net: nn.Module, loader: DataLoader, optimisation: Optimisation, criterion: nn.Module
) -> tuple[float, float]:
    """One pass over ``loader`` (``net`` returns logits); mean loss and accuracy on the augmented batches."""
    net.train()
    device = device_for(net)
    model = net.module.model if hasattr(net, "module") else net.model  # under DistributedDataParallel, or not
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in tqdm(loader, desc="train", leave=False, disable=not distributed.is_main()):
        images, labels = _to_device(images, device), labels.to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = net(images)
            loss = criterion(logits, labels)
        optimisation.step(loss, model)
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    return distributed.mean_of(total_loss, seen), distributed.mean_of(correct, seen)


@torch.inference_mode()
def evaluate(model: ImageClassifier, loader: DataLoader) -> tuple[float, float, np.ndarray]:
    """Mean loss and accuracy over all processes' shares; probabilities for this process's images."""
    model.eval()
    device = device_for(model)
    total_loss, correct, probs = 0.0, 0, []
    for images, labels in loader:
        images, labels = _to_device(images, device), labels.to(device)
        logits = model.logits(images).float()
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        probs.append(logits.softmax(1).cpu().numpy())
    n = len(loader.dataset)
    return distributed.mean_of(total_loss, n), distributed.mean_of(correct, n), np.concatenate(probs)


def fit(
    model: ImageClassifier,
    loaders: tuple[DataLoader, DataLoader],
    cfg: FineTuneConfig,
    out_dir: Path,
    config: dict,
    weight: torch.Tensor | None = None,
) -> History:
    """Train; keep the best validation checkpoint in ``out_dir`` and the latest state in ``out_dir/last.pt``.

    ``cfg`` holds the epochs, optimizer, schedule, learning rates, weight decay, label smoothing, weight average and
    patience; ``weight`` the classes' loss weights. With ``cfg.resume``, a run interrupted (or finished) with the same
    config continues from its last completed epoch instead of starting again. With ``cfg.ema_decay``, the moving
    average of the weights is a checkpoint candidate every epoch, chosen on validation like the weights themselves."""
    device = distributed.device()
    train_loader, val_loader = loaders
    epochs, patience = cfg.epochs, cfg.patience
    model = model.to(device).to(memory_format=torch.channels_last)
    net = distributed.wrap(Logits(model))
    optimisation = _optimisation(model, cfg, epochs * len(train_loader), device)
    weight = weight.to(device) if weight is not None else None
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    state = {"model": model, **{k: v for k, v in vars(optimisation).items() if v is not None}}
    average = optimisation.average
    history = _resume(out_dir / LAST, state, config) if cfg.resume else History()
    if config.get("head_init") == "probe" and not history.rows:
        _keep_the_start(model, val_loader, out_dir, config, history)
    for epoch in range(len(history.rows), epochs if not history.finished else 0):
        seed_epoch(train_loader, epoch)
        started = time.monotonic()
        train_loss, train_acc = train_one_epoch(net, train_loader, optimisation, criterion)
        val_loss, val_acc, _ = evaluate(model, val_loader)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc}
        row.update(val_loss=val_loss, val_accuracy=val_acc)
        best_model, best_acc = model, val_acc
        if average is not None:
            row["val_accuracy_average"] = evaluate(average.module, val_loader)[1]
            if row["val_accuracy_average"] > val_acc:
                best_model, best_acc = average.module, row["val_accuracy_average"]
        history.rows.append({**row, "seconds": time.monotonic() - started})
        distributed.log(_epoch_line(history.rows[-1], epochs))
        if best_acc > history.best_val_accuracy:
            history.best_epoch, history.best_val_accuracy = epoch + 1, best_acc
            if distributed.is_main():
                kind = "average" if best_model is not model else "weights"
                save_classifier(best_model, out_dir, **config, best_epoch=epoch + 1, val_accuracy=best_acc, kept=kind)
        elif epoch + 1 - history.best_epoch >= patience:
            distributed.log(f"early stop: no validation gain for {patience} epochs")
            history.finished = True
        history.finished = history.finished or epoch + 1 == epochs
        _save_last(out_dir / LAST, state, config, history)
        if history.finished:
            break
    return history


def _keep_the_start(model: ImageClassifier, val_loader: DataLoader, out_dir: Path, config: dict, history: History):
    """A head started from a probe is already a model: it is the checkpoint (epoch 0) until an epoch beats it on
    validation, so fine-tuning never hands on less than it started from."""
    history.best_val_accuracy = evaluate(model, val_loader)[1]
    history.best_epoch = 0
    distributed.log(f"epoch 0 (the probe's head, before training): val acc {history.best_val_accuracy:.3f}")
    if distributed.is_main():
        save_classifier(model, out_dir, **config, best_epoch=0, val_accuracy=history.best_val_accuracy, kept="start")


def _epoch_line(row: dict, epochs: int) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f} | "
        f"val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.3f}"
    )
    if "val_accuracy_average" in row:
        line += f" (weight average {row['val_accuracy_average']:.3f})"
    return line + f" ({row['seconds']:.0f} s)"


def _weight_average(model: ImageClassifier, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights and batch-norm statistics (``decay`` per step), or None."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _optimisation(model: ImageClassifier, cfg: FineTuneConfig, steps: int, device: torch.device) -> Optimisation:
    """The optimizer over the parameters not frozen (discriminative rates), its learning-rate schedule, the AMP
    gradient scaler and the weight average (``EMA_DECAY``)."""
    groups = param_group_rates(model, cfg.learning_rate, cfg.backbone_lr_scale)
    opt = make_optimizer(groups, cfg.optimizer, cfg.learning_rate, cfg.weight_decay)
    scheduler = make_schedule(opt, cfg.schedule, cfg.learning_rate, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    return Optimisation(opt, scheduler, scaler, _weight_average(model, cfg.ema_decay))


LAST = "last.pt"


def _save_last(path: Path, state: dict, config: dict, history: History) -> None:
    """Everything needed to continue after this epoch; written atomically by the main process."""
    if not distributed.is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot = {name: part.state_dict() for name, part in state.items()}
    snapshot.update(config=json.dumps(config, sort_keys=True, default=str), history=vars(history))
    torch.save(snapshot, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _resume(path: Path, state: dict, config: dict) -> History:
    if not path.is_file():
        return History()
    snapshot = torch.load(path, map_location=distributed.device(), weights_only=False)
    if snapshot["config"] != json.dumps(config, sort_keys=True, default=str):
        distributed.log(f"{path} was saved with other settings: starting afresh")
        return History()
    for name, part in state.items():
        part.load_state_dict(snapshot[name])
    history = History(**snapshot["history"])
    done = "finished" if history.finished else "continuing"
    distributed.log(f"resuming from {path}: {len(history.rows)} epoch(s) done, {done}")
    return history


def fine_tune(manifest: pd.DataFrame, cfg, out_dir: Path, sample: str = "") -> History:
    """The whole fine-tuning step from a manifest and a ``FineTuneConfig``, as the notebook and
    ``python -m <package> train`` (alone or under torchrun) run it. ``sample``: the bundled sample the
    images came from ("" for the user's own), which settles 'auto' settings."""
    cfg = cfg.with_data_defaults(sample)
    distributed.setup()
    torch.manual_seed(cfg.seed)
    classes = sorted(manifest.label.unique())
    train_loader, val_loader = build_loaders(manifest, classes, cfg)
    model = new_classifier(cfg.backbone, len(classes), cfg.resolution, cfg.dropout, weights=cfg.weights)
    if cfg.head_init == "probe":
        start_head_from_probe(model, manifest, classes, cfg)
    model.backbone.freeze(cfg.freeze_blocks, norms=cfg.freeze_norms)
    train_labels = train_loader.dataset.labels
    distributed.log(
        f"{len(train_labels)} training and {len(val_loader.dataset)} validation images, {cfg.epochs} epochs, "
        f"{distributed.rank_and_world()[1]} process(es) on {distributed.device()}"
    )
    config = {
        "backbone": cfg.backbone,
        "resolution": cfg.resolution,
        "resize": cfg.resize,
        "classes": classes,
        "classifier": "fine_tuned",
        "settings": vars(cfg),
        "weights_note": weights_note(cfg.backbone, cfg.weights),  # the model card names the weights and licence
        "data": training_data_digest(manifest),  # a checkpoint resumes only on the images it was trained on
        "head_init": cfg.head_init,  # a probe's head is a model already: epoch 0 is a checkpoint candidate
    }
    weight = class_weights(train_labels, len(classes), cfg.class_weights)
    return fit(model, (train_loader, val_loader), cfg, out_dir, config, weight)


def training_data_digest(manifest: pd.DataFrame) -> str:
    """The training and validation images (content, label, split), as one digest: ``resume`` must not go on
    from a checkpoint trained on other images (an image added, removed or relabelled starts training afresh)."""
    rows = manifest[manifest.split.isin(["train", "val"])].sort_values("path")
    text = "\n".join(f"{r.sha256},{r.label},{r.split}" for r in rows.itertuples())
    return hashlib.sha256(text.encode()).hexdigest()


HEAD_PROBE_C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # unstandardized pooled features: the optimum lies in here


def start_head_from_probe(model: ImageClassifier, manifest: pd.DataFrame, classes: list[str], cfg):
    """LP-FT: the new layer starts as a logistic regression fitted (C chosen on validation) on the frozen network's
    average-pooled features at the fine-tuning resolution, so the first steps refine a working classifier instead of
    pushing a random head's large gradients into the pretrained features. Fitted on the features as they are, not
    standardized: folding a standardizer puts 1/std of near-constant features into the weights, and training's
    batch statistics and dropout then send the logits into the hundreds. The features are the model's own
    backbone's (computed afresh, seconds through ONNX Runtime; training writes no cache)."""
    spec = features.FeatureSpec(cfg.backbone, cfg.resolution, cfg.weights, "average", cfg.resize, cfg.batch_size)
    rows = manifest[manifest.split.isin(["train", "val"])]
    with tempfile.TemporaryDirectory(prefix="head-probe-") as work:
        x = features.features_of(model.backbone.eval(), list(rows.path), spec, Path(work))
    y = rows.label.map({name: i for i, name in enumerate(classes)}).to_numpy()
    train_rows, val_rows = (rows.split == "train").to_numpy(), (rows.split == "val").to_numpy()
    unscaled = partial(probe.make_probe, standardize=False)
    fitted = probe.fit_probe(x[train_rows], y[train_rows], x[val_rows], y[val_rows], HEAD_PROBE_C_GRID, unscaled)
    model.head.load_state_dict(probe.to_linear(fitted.pipeline).state_dict())
    distributed.log(f"head started from a probe: C = {fitted.best_c:g}, validation accuracy {fitted.val_accuracy:.4f}")
    return fitted


def views_allowed(flips: str) -> list[str]:
    """The test-time views a model trained with ``flips`` has seen: one view, then the mirrors it learned."""
    return {"none": ["none"], "horizontal": ["none", "horizontal"], "all": ["none", "horizontal", "all"]}[flips]


def choose_views_and_resolution(
    checkpoint: Path, manifest: pd.DataFrame, views: list[str], resolutions: list[int]
) -> dict:
    """The saved best model's test-time views and prediction resolution, each chosen on validation: the views
    first (at the training resolution), then the resolution with those views (FixRes). A single view and the
    training resolution are kept unless another choice scores strictly higher there, so a choice that lowers
    validation accuracy is never applied. The stored ``val_accuracy`` is that of the model exactly as it will
    predict, so choosing between models stays fair."""
    model, config = load_classifier(checkpoint)
    config.setdefault("val_accuracy_without_tta", config["val_accuracy"])  # a re-run must not stack choices
    config.setdefault("training_resolution", config["resolution"])
    val = manifest[manifest.split == "val"]
    truth = val.label.to_numpy()

    def accuracy(tta: str, resolution: int) -> float:
        model.tta = tta
        probs = predict_paths(model, list(val.path), resolution, config["resize"])
        return float((np.asarray(config["classes"])[probs.argmax(1)] == truth).mean())

    trained_at = config["training_resolution"]
    tried = {(tta, trained_at): accuracy(tta, trained_at) for tta in views}
    best_tta = max(views, key=lambda tta: (tried[tta, trained_at], -views.index(tta)))
    for resolution in resolutions:
        if (best_tta, resolution) not in tried:
            tried[best_tta, resolution] = accuracy(best_tta, resolution)
    best_res = max(resolutions, key=lambda r: (tried[best_tta, r], -resolutions.index(r)))
    model.tta = best_tta
    config.update(tta=best_tta, resolution=best_res, val_accuracy=tried[best_tta, best_res])
    config["views_tried"] = [{"tta": t, "resolution": r, "val_accuracy": a} for (t, r), a in tried.items()]
    save_classifier(model, checkpoint, **config)
    return config
