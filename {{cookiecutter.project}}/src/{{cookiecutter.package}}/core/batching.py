"""Splitting work into batches: the one loop the featurizer, the model, the scorer and the service share."""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

Item = TypeVar("Item")


def batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last one shorter), from any iterable, lazily."""
    if size < 1:
        raise ValueError(f"batch size {size} must be at least 1")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
