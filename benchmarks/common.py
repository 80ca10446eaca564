"""What every benchmark records beside its numbers, in the schema of ``captioning.provenance``:
the command, the code's commit, the data, the machine (CPU model, cores, AVX-512/AMX flags),
the versions and the date."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing
RESULTS = ROOT / "experiments" / "benchmarks"


def record(name: str, result: dict, out: str | None = None, data_card: dict | None = None) -> Path:
    """Write ``result`` with its provenance to ``experiments/benchmarks/<name>.json``.

    ``data_card``: the prepared dataset's ``data_card.json`` when the benchmark read MedNIST
    (says development copy or full archive, and the manifest checksum); keys of
    ``result["data"]`` are kept beside those."""
    from captioning.provenance import provenance

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
