"""Where a number came from: the code, the data and the machine that produced it.

One schema for training runs (``run.json``), recorded results (``experiments/results``) and
benchmarks (``experiments/benchmarks``), so every published number can name its source::

    {"command": ..., "date": ..., "code": {"commit", "dirty"},
     "data": {"copy", "images", "manifest_sha256"},
     "machine": {"cpu", "cores", "flags", "memory_mib", "platform"}, "versions": {...}}

A field that was not recorded is ``null``, never guessed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

# MedNIST as published has 58,954 images; the development copy keeps 1,000 per class aside.
FULL_IMAGES = 58_954
DEVELOPMENT_IMAGES = 52_954
# CPU flags that change TensorFlow's speed (and sometimes its last digits) on x86-64
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
SCHEMA = 1


def git_state(where: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``where``
    (default: this package). ``dirty`` is true when tracked files differ from the commit."""
    cwd = Path(where) if where else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], capture_output=True, text=True, cwd=cwd, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def machine() -> dict:
    """CPU model, cores, the CPU flags that matter, memory and platform of this machine."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        meminfo = Path("/proc/meminfo").read_text().splitlines()
    except OSError:  # not Linux: what the platform module knows
        cpuinfo, meminfo = [], []
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
        platform.processor() or None,
    )
    flags_line = next((ln.split(":", 1)[1] for ln in cpuinfo if ln.startswith("flags")), None)
    flags = set(flags_line.split()) if flags_line is not None else None
    memory = next((int(ln.split()[1]) // 1024 for ln in meminfo if ln.startswith("MemTotal")), None)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "flags": None if flags is None else {name: name in flags for name in CPU_FLAGS},
        "memory_mib": memory,
        "platform": platform.platform(),
    }


def data_copy(images: int | None) -> str | None:
    """``development`` (52,954 images), ``full`` (58,954) or ``other``, from the image count."""
    if images is None:
        return None
    return {DEVELOPMENT_IMAGES: "development", FULL_IMAGES: "full"}.get(int(images), "other")


def data_provenance(card: dict | None) -> dict:
    """Which MedNIST copy a prepared dataset holds, from its data card (``data_card.json``)."""
    if not card:
        return {"copy": None, "images": None, "manifest_sha256": None}
    images = card.get("n_images")
    return {
        "copy": data_copy(images),
        "images": images,
        "manifest_sha256": card.get("manifest_sha256"),
    }


def provenance(command: str, data_card: dict | None = None) -> dict:
    """The provenance block of a result measured now, by ``command`` in this checkout."""
    from captioning.utils.runs import package_versions

    return {
        "schema": SCHEMA,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "code": git_state(),
        "data": data_provenance(data_card),
        "machine": machine(),
        "versions": package_versions(),
    }
