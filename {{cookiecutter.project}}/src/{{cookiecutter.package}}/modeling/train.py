"""Fine-tuning: a new head on the pretrained backbone, trained end to end with augmentation.

Flat, small functions: ``build_loaders``, ``train_one_epoch``, ``evaluate``, ``fit``.
On CUDA it uses mixed precision and channels_last; on CPU a seed makes runs repeatable.
"""

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from ..core.config import FineTuneConfig
from ..core.images import load_image
from . import distributed
from .augment import augment_batch, build_augmenter
from .model import ImageClassifier, Logits, load_classifier, new_classifier, predict_paths, save_classifier


class ImageFiles(Dataset):
    """uint8 HWC images at a fixed resolution, made square as ``resize`` says, with integer labels."""

    def __init__(self, paths: list[str], labels: np.ndarray, resolution: int, resize: str) -> None:
        self.paths, self.labels, self.resolution, self.resize = paths, labels, resolution, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return load_image(self.paths[i], self.resolution, self.resize), int(self.labels[i])


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
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"Invalid optimizer {name!r}. Only adamw, sgd are supported.")


def make_schedule(optimizer: torch.optim.Optimizer, name: str, learning_rate: float, total_steps: int):
    """Learning rate per step: one-cycle (warm up, then anneal), cosine annealing, or constant."""
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=total_steps, pct_start=0.15
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"Invalid schedule {name!r}. Only onecycle, cosine, constant are supported.")


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """'balanced': each class weighs n / (k * count), so rare classes count as much as common ones."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).clip(min=1)
    return torch.tensor(len(labels) / (n_classes * counts), dtype=torch.float32)


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
) -> tuple[float, float]:
    """One pass over ``loader`` (``net`` returns logits); mean loss and accuracy on the augmented batches."""
    net.train()
    device = device_for(net)
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in tqdm(loader, desc="train", leave=False, disable=not distributed.is_main()):
        images, labels = _to_device(images, device), labels.to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = net(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
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

    ``cfg`` holds the epochs, optimizer, schedule, learning rate, weight decay, label smoothing and patience;
    ``weight`` the classes' loss weights. With ``cfg.resume``, a run interrupted (or finished) with the same
    config continues from its last completed epoch instead of starting again."""
    device = distributed.device()
    train_loader, val_loader = loaders
    epochs, patience = cfg.epochs, cfg.patience
    model = model.to(device).to(memory_format=torch.channels_last)
    net = distributed.wrap(Logits(model))
    opt, scheduler, scaler = _optimisation(model, cfg, epochs * len(train_loader), device)
    weight = weight.to(device) if weight is not None else None
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    state = {"model": model, "optimizer": opt, "scheduler": scheduler, "scaler": scaler}
    history = _resume(out_dir / LAST, state, config) if cfg.resume else History()
    for epoch in range(len(history.rows), epochs if not history.finished else 0):
        seed_epoch(train_loader, epoch)
        started = time.monotonic()
        train_loss, train_acc = train_one_epoch(net, train_loader, opt, scheduler, scaler, criterion)
        val_loss, val_acc, _ = evaluate(model, val_loader)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc}
        history.rows.append(
            {**row, "val_loss": val_loss, "val_accuracy": val_acc, "seconds": time.monotonic() - started}
        )
        distributed.log(
            f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.3f} acc {train_acc:.3f} | "
            f"val loss {val_loss:.3f} acc {val_acc:.3f} ({history.rows[-1]['seconds']:.0f} s)"
        )
        if val_acc > history.best_val_accuracy:
            history.best_epoch, history.best_val_accuracy = epoch + 1, val_acc
            if distributed.is_main():
                save_classifier(model, out_dir, **config, best_epoch=epoch + 1, val_accuracy=val_acc)
        elif epoch + 1 - history.best_epoch >= patience:
            distributed.log(f"early stop: no validation gain for {patience} epochs")
            history.finished = True
        history.finished = history.finished or epoch + 1 == epochs
        _save_last(out_dir / LAST, state, config, history)
        if history.finished:
            break
    return history


def _optimisation(model: ImageClassifier, cfg: FineTuneConfig, steps: int, device: torch.device) -> tuple:
    """The optimizer over the parameters not frozen, its learning-rate schedule, and the AMP gradient scaler."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.optimizer, cfg.learning_rate, cfg.weight_decay)
    scheduler = make_schedule(opt, cfg.schedule, cfg.learning_rate, steps)
    return opt, scheduler, torch.amp.GradScaler(device.type, enabled=device.type == "cuda")


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
    model.backbone.freeze(cfg.freeze_blocks)
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
        "data": training_data_digest(manifest),  # a checkpoint resumes only on the images it was trained on
    }
    weight = class_weights(train_labels, len(classes), cfg.class_weights)
    return fit(model, (train_loader, val_loader), cfg, out_dir, config, weight)


def training_data_digest(manifest: pd.DataFrame) -> str:
    """The training and validation images (content, label, split), as one digest: ``resume`` must not go on
    from a checkpoint trained on other images (an image added, removed or relabelled starts training afresh)."""
    rows = manifest[manifest.split.isin(["train", "val"])].sort_values("path")
    text = "\n".join(f"{r.sha256},{r.label},{r.split}" for r in rows.itertuples())
    return hashlib.sha256(text.encode()).hexdigest()


def add_test_time_augmentation(checkpoint: Path, manifest: pd.DataFrame, tta: str) -> dict:
    """Turn on mirrored-view averaging in the saved best model and re-measure its validation accuracy.

    The stored ``val_accuracy`` is always that of the model exactly as it will predict,
    so choosing between models on validation stays fair.
    """
    model, config = load_classifier(checkpoint)
    model.tta = tta
    val = manifest[manifest.split == "val"]
    probs = predict_paths(model, list(val.path), config["resolution"], config["resize"])
    predicted = np.asarray(config["classes"])[probs.argmax(1)]
    config.setdefault("val_accuracy_without_tta", config["val_accuracy"])  # a re-run must not stack TTA twice
    config["tta"] = tta
    config["val_accuracy"] = float((predicted == val.label.to_numpy()).mean())
    save_classifier(model, checkpoint, **config)
    return config
