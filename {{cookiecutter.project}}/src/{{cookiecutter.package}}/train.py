"""Fine-tuning: a new head on the pretrained backbone, trained end to end with augmentation.

Flat, small functions: ``build_loaders``, ``train_one_epoch``, ``evaluate``, ``fit``.
On CUDA it uses mixed precision and channels_last; on CPU a seed makes runs repeatable.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .augment import augment_batch, build_augmenter
from .data import load_image
from .model import ImageClassifier, load_classifier, predict_paths, save_classifier


class ImageFiles(Dataset):
    """uint8 HWC images at a fixed resolution, with integer labels."""

    def __init__(self, paths: list[str], labels: np.ndarray, resolution: int) -> None:
        self.paths, self.labels, self.resolution = paths, labels, resolution

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return load_image(self.paths[i], self.resolution), int(self.labels[i])


def _collate(augmenter):
    def collate(items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = np.stack([image for image, _ in items])
        if augmenter is not None:
            images = augment_batch(augmenter, images)
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        return batch, torch.tensor([label for _, label in items])

    return collate


def build_loaders(
    manifest: pd.DataFrame,
    classes: list[str],
    resolution: int,
    batch_size: int,
    flips: str,
    seed: int,
    augment_strength: float = 1.0,
) -> tuple[DataLoader, DataLoader]:
    """Augmented, shuffled train loader and a plain validation loader (num_workers=0: 2-core CPUs)."""
    index = {name: i for i, name in enumerate(classes)}

    def dataset(split: str) -> ImageFiles:
        rows = manifest[manifest.split == split]
        return ImageFiles(list(rows.path), rows.label.map(index).to_numpy(), resolution)

    augmenter = build_augmenter(flips, augment_strength)
    augmenter.seed_(seed)
    train = DataLoader(
        dataset("train"),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=_collate(augmenter),
        generator=torch.Generator().manual_seed(seed),
    )
    val = DataLoader(dataset("val"), batch_size=batch_size, collate_fn=_collate(None))
    return train, val


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0


def device_for(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last)


def train_one_epoch(
    model: ImageClassifier,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    label_smoothing: float,
    scaler: torch.amp.GradScaler,
) -> tuple[float, float]:
    """One pass over ``loader``; returns mean loss and accuracy on the (augmented) batches."""
    model.train()
    device = device_for(model)
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in tqdm(loader, desc="train", leave=False):
        images, labels = _to_device(images, device), labels.to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model.logits(images)
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    return total_loss / seen, correct / seen


@torch.inference_mode()
def evaluate(model: ImageClassifier, loader: DataLoader) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the probabilities for every image of ``loader``."""
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
    return total_loss / n, correct / n, np.concatenate(probs)


def fit(
    model: ImageClassifier,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    label_smoothing: float,
    patience: int,
    out_dir: Path,
    config: dict,
) -> History:
    """Train with AdamW and a one-cycle schedule; keep the best validation checkpoint in ``out_dir``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * len(train_loader), pct_start=0.15
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    history = History()
    for epoch in range(epochs):
        started = time.monotonic()
        train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, scheduler, label_smoothing, scaler)
        val_loss, val_acc, _ = evaluate(model, val_loader)
        history.rows.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.monotonic() - started,
            }
        )
        print(
            f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.3f} acc {train_acc:.3f} | "
            f"val loss {val_loss:.3f} acc {val_acc:.3f} ({history.rows[-1]['seconds']:.0f} s)",
            flush=True,
        )
        if val_acc > history.best_val_accuracy:
            history.best_epoch, history.best_val_accuracy = epoch + 1, val_acc
            save_classifier(model, out_dir, **config, best_epoch=epoch + 1, val_accuracy=val_acc)
        elif epoch + 1 - history.best_epoch >= patience:
            print(f"early stop: no validation gain for {patience} epochs")
            break
    return history


def add_test_time_augmentation(checkpoint: Path, manifest: pd.DataFrame, tta: str) -> dict:
    """Turn on mirrored-view averaging in the saved best model and re-measure its validation accuracy.

    The stored ``val_accuracy`` is always that of the model exactly as it will predict,
    so choosing between models on validation stays fair.
    """
    model, config = load_classifier(checkpoint)
    model.tta = tta
    val = manifest[manifest.split == "val"]
    probs = predict_paths(model, list(val.path), config["resolution"])
    predicted = np.asarray(config["classes"])[probs.argmax(1)]
    config.update(tta=tta, val_accuracy_without_tta=config["val_accuracy"])
    config["val_accuracy"] = float((predicted == val.label.to_numpy()).mean())
    save_classifier(model, checkpoint, **config)
    return config
