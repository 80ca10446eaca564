"""Where things live by default: ``$CAPTIONING_HOME`` or ``~/.cache/captioning``."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CAPTIONING_HOME"


def captioning_home() -> Path:
    """Root for downloads and prepared data when no folder is given."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "captioning"


def default_data_root() -> Path:
    """The prepared MedNIST folder that ``data prepare`` writes and training reads by default."""
    return captioning_home() / "mednist"
