"""Dynamic micro-batching: images from requests that arrive within a few milliseconds share one model call.

The model runs on one worker thread, off the event loop, so the service keeps answering /health and
accepting uploads while a batch runs; the queue is bounded, so load beyond it is refused, not buffered.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class QueueFull(Exception):
    """More images are waiting than the service allows: the client should retry later (503)."""


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ):
        self.infer, self.max_batch, self.max_wait_s, self.max_queue = infer, max_batch, max_wait_s, max_queue
        self.on_batch = on_batch  # called with (images, seconds) after every model call, for the metrics
        self.waiting = 0  # images queued or in the running batch
        self.coming = 0  # requests received and still being decoded: worth waiting for
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue and not self._queue.empty():  # whoever still waits gets an answer, not a hang
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(QueueFull("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for ``images`` (N, 3, H, W), computed together with whatever else is waiting."""
        if not self.running:
            raise QueueFull("the model is not running")
        if self.waiting + len(images) > self.max_queue:
            raise QueueFull(f"{self.waiting} images are waiting for the model (at most {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(images)
        self._queue.put_nowait((images, future))
        try:
            return await future
        finally:
            self.waiting -= len(images)

    async def _serve(self) -> None:
        while True:
            items = await self._collect()
            try:
                await self._answer(items)
            except Exception as error:  # whatever fails fails this batch's requests, never the batcher
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)

    async def _answer(self, items: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        batch = np.concatenate([images for images, _ in items])
        started = loop.time()
        probs = await loop.run_in_executor(self._executor, self._infer_in_chunks, batch)
        self.on_batch(len(batch), loop.time() - started)
        start = 0
        for images, future in items:
            if not future.done():  # cancelled if the service is stopping
                future.set_result(probs[start : start + len(images)])
            start += len(images)

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The first waiting request, then whatever else is queued, up to max_batch images; it waits up to
        max_wait_s for more only while other requests are still being decoded, so a lone request never waits.
        (Under load, requests queue while the model runs, and the next batch takes them all.)"""
        loop = asyncio.get_running_loop()
        items = [await self._queue.get()]
        size, deadline = len(items[0][0]), loop.time() + self.max_wait_s
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or not self.coming:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            items.append(item)
            size += len(item[0])
        return items

    def _infer_in_chunks(self, batch: np.ndarray) -> np.ndarray:
        chunks = [self.infer(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return np.concatenate(chunks)
