"""Run folders: what every training run writes so that it can be reproduced and resumed.

A run folder holds ``config.json`` (resolved config), ``run.json`` (exact command, seed,
manifest checksum, classes, package versions), ``metrics.json``, ``log.csv``, ``curves.png``,
``tensorboard/``, ``checkpoints/`` and the best model. A lock file stops two commands from
writing the same folder at once.
"""

from __future__ import annotations

import fcntl
import json
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from captioning.errors import RunError
from captioning.utils.atomic import atomic_path

PACKAGES = (
    "captioning",
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "pillow",
    "nltk",
)


def default_run_dir(kind: str) -> Path:
    """``runs/<kind>-<YYYYmmdd-HHMMSS>`` under the working directory."""
    return Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def package_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that decide a run's numbers."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        )
        if commit.returncode == 0:
            versions["captioning_git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_json(path: Path, payload) -> None:
    """Write JSON atomically (temporary file, then rename): a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path):
    """The JSON in ``path``; a one-line ``RunError`` when it is missing or corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing (is this a run folder?)") from None
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: corrupt JSON ({err})") from None


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``; released when the process ends, even by
    SIGKILL, so a killed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise RunError(
                f"{self.path.parent}: another command is writing this run folder (locked)"
            ) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def check_resume(run_dir: Path, config: dict, frozen_sections: tuple[str, ...]) -> bool:
    """True if ``run_dir`` holds an earlier run of this experiment to resume.

    Refuses (``RunError``) when the saved config differs in a section that decides the
    architecture or the data (``frozen_sections``): resuming would mix two experiments.
    """
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return False
    saved = read_json(saved_path)
    for section in frozen_sections:
        if saved.get(section) != config.get(section):
            raise RunError(
                f"{run_dir}: holds a run with a different '{section}' config; "
                "use a new --run-dir (resume refuses a changed experiment)"
            )
    return True
