"""What every benchmark records beside its numbers: machine, versions, command, date."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "benchmarks"


def machine() -> dict:
    """CPU model, cores, memory, platform and the load average at the time of measuring."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
        platform.processor(),
    )
    memory = next((int(ln.split()[1]) // 1024 for ln in meminfo if ln.startswith("MemTotal")), None)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": memory,
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def record(name: str, result: dict, out: str | None = None) -> Path:
    """Write ``result`` with its provenance to ``experiments/benchmarks/<name>.json``."""
    from captioning.runs import package_versions

    path = Path(out) if out else RESULTS / f"{name}.json"
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(["python", *sys.argv]),
        "machine": machine(),
        "versions": package_versions(),
        **result,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {path}")
    return path
