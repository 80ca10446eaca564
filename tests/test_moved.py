"""0.1's import paths keep working for one release, and say where the code went."""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from captioning._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_imports_the_new_module_and_warns(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)  # a fresh import: the warning comes on the import itself
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is new


def test_the_old_module_paths_exist_no_more_as_files():
    """An alias must not hide a module that is still there (the finder would shadow it)."""
    for old in MOVED:
        assert importlib.util.find_spec(MOVED[old]) is not None
        root = Path(importlib.import_module("captioning").__path__[0])
        assert not root.joinpath(*old.split(".")[1:]).with_suffix(".py").exists(), old


@pytest.mark.parametrize(
    ("module", "name", "new"),
    [
        ("captioning.commands.caption", "Captioner", "captioning.inference"),
        (
            "captioning.commands.train_classifier",
            "ClassificationTask",
            "captioning.training.classifier_task",
        ),
        ("captioning.commands.evaluate", "write_confusion", "captioning.evaluation.classifier"),
    ],
)
def test_a_moved_name_warns_and_is_the_same_object(module, name, new):
    with pytest.warns(DeprecationWarning, match=name):
        found = getattr(importlib.import_module(module), name)
    assert found is getattr(importlib.import_module(new), name)
