"""The service's batcher: jobs queued together are captioned in one call, each gets its own
entries back in order, a failing call fails only its jobs, and the worker goes on."""

from __future__ import annotations

import threading

import pytest

from captioning.serving.batching import Batcher


class Recorder:
    """A caption function that records its calls and can be held or made to fail."""

    def __init__(self):
        self.calls: list[tuple[list, bool]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, inputs, attention):
        self.entered.set()
        self.gate.wait(10)
        self.calls.append((list(inputs), attention))
        if "boom" in inputs:
            raise RuntimeError("boom")
        return [{"path": x, "attention": "maps"} for x in inputs]


def test_queued_jobs_share_one_call_and_get_their_own_entries():
    caption = Recorder()
    batcher = Batcher(caption, max_batch=8, max_wait=0.0)
    batcher.start()
    caption.gate.clear()  # the first job holds the worker while three more queue up
    first = batcher.submit(["a"])
    assert caption.entered.wait(10)
    waiting = [batcher.submit(["b", "c"]), batcher.submit(["d"], attention=True)]
    last = batcher.submit(["e"])
    caption.gate.set()
    assert first.result(10) == [{"path": "a"}]
    assert waiting[0].result(10) == [{"path": "b"}, {"path": "c"}]
    assert waiting[1].result(10) == [{"path": "d", "attention": "maps"}]
    assert last.result(10) == [{"path": "e"}]
    batcher.stop()
    assert caption.calls == [(["a"], False), (["b", "c", "d", "e"], True)]


def test_max_batch_bounds_a_call():
    caption = Recorder()
    batcher = Batcher(caption, max_batch=2, max_wait=0.0)
    caption.gate.clear()
    futures = [batcher.submit([name]) for name in "abcde"]
    batcher.start()
    caption.gate.set()
    assert [f.result(10)[0]["path"] for f in futures] == list("abcde")
    batcher.stop()
    assert [len(inputs) for inputs, _ in caption.calls] == [2, 2, 1]


def test_a_failed_call_fails_its_jobs_only():
    caption = Recorder()
    batcher = Batcher(caption, max_batch=1, max_wait=0.0)
    batcher.start()
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(["boom"]).result(10)
    assert batcher.submit(["fine"]).result(10) == [{"path": "fine"}]
    batcher.stop()


def test_waits_for_jobs_that_arrive_soon_after_the_first():
    caption = Recorder()
    batcher = Batcher(caption, max_batch=8, max_wait=5.0)
    batcher.start()
    first = batcher.submit(["a"])
    later = list("bcdefgh")  # fills the batch: the call starts then, not after 5 s
    threading.Timer(0.2, lambda: batcher.submit(later)).start()
    assert first.result(4) == [{"path": "a"}]
    batcher.stop()
    assert caption.calls == [(["a", *later], False)]
