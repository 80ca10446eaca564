"""One worker thread that owns the model and captions what concurrent requests queue together.

TensorFlow's caption call is CPU-bound and costs nearly the same for 1 image as for 32 (beam
search runs a fixed number of steps per batch), so ``captioning serve`` does not caption each
request on its own: requests queue their decoded images, and the worker takes everything
queued (up to ``max_batch`` images) into one call, then hands each request its own entries.
It waits ``max_wait`` seconds after the first request for others to join: under load,
requests answered together come back together, and without the wait the first one or two of
them would be captioned alone, at the cost of a full batch. One thread also means the model
is never called from two threads at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class Job:
    """One request's inputs, whether it wants attention maps, and where its entries go."""

    inputs: list
    attention: bool
    future: Future = field(default_factory=Future)


class Batcher:
    """Calls ``caption(inputs, attention) -> entries`` (one entry per input, in order) from a
    single thread, on the inputs of every job queued within ``max_wait`` seconds of the first,
    ``max_batch`` images at most."""

    def __init__(
        self,
        caption: Callable[[list, bool], list[dict]],
        max_batch: int = 32,
        max_wait: float = 0.05,
    ):
        self.caption = caption
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="captioning-batcher", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish the queued jobs, then end the worker."""
        self._queue.put(None)
        self._thread.join()

    def submit(self, inputs: list, attention: bool = False) -> Future:
        """Queue one request's inputs; the future gets its entries (or the caption error)."""
        job = Job(inputs, attention)
        self._queue.put(job)
        return job.future

    def _work(self) -> None:
        """The worker: take a job, gather what joins it within ``max_wait`` (up to
        ``max_batch`` images), caption them together; until ``stop``."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, images = [job], len(job.inputs)
            deadline = time.monotonic() + self.max_wait
            while images < self.max_batch:
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:  # stop after this batch
                    self._queue.put(None)
                    break
                jobs.append(more)
                images += len(more.inputs)
            self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        """Caption the inputs of ``jobs`` in one call and hand each job its own entries
        (attention maps only to the jobs that asked for them)."""
        inputs = [item for job in jobs for item in job.inputs]
        try:
            entries = self.caption(inputs, any(job.attention for job in jobs))
        except Exception as err:  # every job of the batch hears of it; the worker goes on
            for job in jobs:
                job.future.set_exception(err)
            return
        start = 0
        for job in jobs:
            part = entries[start : start + len(job.inputs)]
            start += len(job.inputs)
            if not job.attention:
                for entry in part:
                    entry.pop("attention", None)
            job.future.set_result(part)
