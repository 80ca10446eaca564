"""Quiet TensorFlow start-up for every user of the package, library or command line.

Importing TensorFlow writes C++ log lines (oneDNN, CUDA probing, CPU features) to stderr before
its logging is configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. ``install`` (called
by ``captioning/__init__.py``) sets ``TF_CPP_MIN_LOG_LEVEL=3`` for later messages, and adds an
import hook that sends file descriptor 2 to /dev/null while ``tensorflow`` itself is first
imported, wherever that import happens. Python exceptions still propagate. Nothing is changed
for a user who set ``TF_CPP_MIN_LOG_LEVEL=0`` (asking for every TensorFlow log line), nor when
TensorFlow was imported before ``captioning``.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


@contextlib.contextmanager
def stderr_to_devnull():
    """Send file descriptor 2 (C++ code writes there directly) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with stderr silenced."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # TF sees its own loader
        with stderr_to_devnull():
            self.loader.exec_module(module)


class _QuietTensorflowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders, then wraps its loader; used once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall()  # before searching, so the search below does not come back here
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorflowFinder()


def install() -> None:
    """Set TensorFlow's log level default and silence its first import (see the module doc)."""
    if os.environ.setdefault(LOG_LEVEL_ENV, "3") == "0" or "tensorflow" in sys.modules:
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Let TensorFlow's start-up lines through again (``captioning --verbose``)."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
