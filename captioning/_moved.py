"""Old import paths of modules that moved in the 0.2 layout: importing one still works, returns
the module at its new path and warns (DeprecationWarning). Removed in the release after 0.2."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module path -> new module path
MOVED = {
    "captioning.atomic": "captioning.utils.atomic",
    "captioning.paths": "captioning.utils.paths",
    "captioning.quiet": "captioning.utils.quiet",
    "captioning.resources": "captioning.utils.resources",
    "captioning.runs": "captioning.utils.runs",
    "captioning.provenance": "captioning.utils.provenance",
    "captioning.train_classifier": "captioning.commands.train_classifier",
    "captioning.train_captioner": "captioning.commands.train_captioner",
    "captioning.evaluate": "captioning.commands.evaluate",
    "captioning.caption": "captioning.commands.caption",
    "captioning.cli_data": "captioning.commands.data",
    "captioning.quickstart": "captioning.commands.quickstart",
    "captioning.evaluate_captioner": "captioning.evaluation.captioner",
    "captioning.evaluate_references": "captioning.evaluation.captioner",
    "captioning.report": "captioning.evaluation.report",
    "captioning.baseline": "captioning.evaluation.baselines",
    "captioning.overlays": "captioning.evaluation.overlays",
    "captioning.serve": "captioning.serving.app",
    "captioning.uploads": "captioning.serving.uploads",
    "captioning.batching": "captioning.serving.batching",
    "captioning.captions.build": "captioning.data.template_captions",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (the same object, not a copy)."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.new}; the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        """Nothing to run: the new module is already executed."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds only the old paths in ``MOVED``; every other import goes on as usual."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())


def moved_name(module: str, name: str, new_module: str):
    """For a module's ``__getattr__``: ``name`` moved from ``module`` to ``new_module``; warn
    (DeprecationWarning) and return it from there, imported on first use."""
    warnings.warn(
        f"{module}.{name} moved to {new_module}.{name}; the old path goes in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), name)
