"""Package data: the built-in caption template sets (``captioning/templates``), the default
experiment configs (``captioning/configs``) and the bundled pretrained model
(``captioning/pretrained``), located with ``importlib.resources`` so they are
found from a wheel or a plain ``pip install .`` as well as from a source checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from captioning.errors import CaptioningError

TEMPLATES = "templates"
CONFIGS = "configs"
PRETRAINED = "pretrained"


def package_folder(kind: str) -> Path:
    """The installed folder of ``kind`` (``TEMPLATES``, ``CONFIGS`` or ``PRETRAINED``)."""
    folder = importlib.resources.files("captioning") / kind
    if not isinstance(folder, Path):  # only a zipped install would do this; pip unpacks wheels
        raise CaptioningError(f"{folder}: the package's {kind} must be files on disk")
    return folder


def builtin_names(kind: str) -> list[str]:
    """Names (file stems) of the ``.toml`` files of ``kind`` shipped in the package."""
    return sorted(p.stem for p in package_folder(kind).glob("*.toml"))


def builtin_file(kind: str, name: str) -> Path | None:
    """The shipped ``<name>.toml`` of ``kind``, or None when there is none."""
    path = package_folder(kind) / f"{name}.toml"
    return path if path.is_file() else None
