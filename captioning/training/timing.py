"""Optional wall-clock timers around the training loop's parts, for profiling where the time
goes (``benchmarks/profile_training.py``).

Off by default: ``phase(name)`` is then a shared ``nullcontext`` (one global read per call, no
clock). Inside ``recording()`` every ``phase`` adds its seconds to the recorder under
``<scope>/<name>``, where the scope is the innermost ``scope(label)`` (the loop opens one per
``fit``, named after its stage). The loop reads every step's statistics back as Python floats,
so a step's timer stops only after the step's work is done.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

_OFF = contextlib.nullcontext()


class PhaseTimes:
    """Seconds and call counts per ``<scope>/<phase>`` name, in the order first seen."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.scopes: list[str] = []

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        key = "/".join([*self.scopes[-1:], name])
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - tic
            self.calls[key] += 1

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{name: {"seconds": s, "calls": n}}``, seconds rounded to the millisecond."""
        return {
            k: {"seconds": round(v, 3), "calls": self.calls[k]} for k, v in self.seconds.items()
        }


_active: PhaseTimes | None = None


@contextlib.contextmanager
def recording() -> Iterator[PhaseTimes]:
    """Switch the timers on for the ``with`` block; yields the recorder that fills up."""
    global _active
    previous, _active = _active, PhaseTimes()
    try:
        yield _active
    finally:
        _active = previous


def timed_iter(iterable, name: str):
    """``iterable`` itself while not recording; else a generator timing each ``next`` as
    ``name`` (e.g. waiting on the input pipeline, which the step timers do not see)."""
    if _active is None:
        return iterable
    return _timed(iter(iterable), _active, name)


def _timed(iterator, times: PhaseTimes, name: str):
    while True:
        with times.time(name):
            item = next(iterator, _END)
        if item is _END:
            return
        yield item


_END = object()


def phase(name: str):
    """A context manager that times its block as ``name`` while recording, else does nothing."""
    return _OFF if _active is None else _active.time(name)


@contextlib.contextmanager
def scope(label: str) -> Iterator[None]:
    """Prefix the phases inside the block with ``label`` (e.g. a stage: ``stage1``)."""
    if _active is None:
        yield
        return
    _active.scopes.append(label)
    try:
        yield
    finally:
        _active.scopes.pop()
