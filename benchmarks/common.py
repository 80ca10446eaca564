"""What every benchmark records beside its numbers, in the schema of
``captioning.utils.provenance``: the command, the code's commit, the data, the machine (CPU
model, cores, AVX-512/AMX flags), the versions and the date."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing
RESULTS = ROOT / "experiments" / "benchmarks"


def record(name: str, result: dict, out: str | None = None, data_card: dict | None = None) -> Path:
    """Write ``result`` with its provenance to ``experiments/benchmarks/<name>.json``.

    ``data_card``: the prepared dataset's ``data_card.json`` when the benchmark read MedNIST
    (says development copy or full archive, and the manifest checksum); keys of
    ``result["data"]`` are kept beside those."""
    from captioning.utils.provenance import provenance

    path = Path(out) if out else RESULTS / f"{name}.json"
    payload = provenance(shlex.join(["python", *sys.argv]), data_card)
    # other work on the machine slows every measurement alike; ratios in one run are robust
    payload["load_average"] = os.getloadavg()
    payload.update({k: v for k, v in result.items() if k != "data"})
    payload["data"] = {**payload["data"], **result.get("data", {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {path}")
    return path


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` now (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_sampled(command: list[str], on_line: Callable[[str], str | None] | None = None) -> dict:
    """Run ``command``, echoing its output, with its resident memory sampled every 0.1 s.

    ``on_line(line)`` may return a new stage name: the peak is kept per stage (one stage,
    ``run``, without it). Returns ``code``, ``seconds`` (wall) and ``peak_rss_mib`` (stage ->
    MiB); RSS counts the process itself, not its children.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    stage, peaks = ["run"], {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss_mib(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stdout:
        sys.stdout.write(line)
        if on_line is not None and (new := on_line(line)):
            stage[0] = new
    code = proc.wait()
    done.set()
    sampler.join()
    return {
        "code": code,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": {k: round(v) for k, v in peaks.items() if v},
    }
