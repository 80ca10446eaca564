"""Peak resident memory of every command, each in its own process, on the real data:

    python benchmarks/memory.py --source /path/to/MedNIST.tar.gz [--out FILE]
    python benchmarks/memory.py --source ARCHIVE --smoke        # a few images: checks the script

In a temporary folder, with the default configs: ``data prepare``, ``train classifier``,
``evaluate`` (classifier), ``train captioner``, ``evaluate`` (captioner, beam 3), ``caption``
of one class folder of the extracted archive (every image of it, to a CSV) and ``export``
(SavedModel). Each command's RSS is sampled every 0.1 s (``common.run_sampled``).

Writes ``peak_rss_mib`` (command -> MiB), ``seconds`` (command -> wall seconds), the largest
peak and whether it is within ``limit_mib`` (2 GiB) to ``experiments/benchmarks/memory.json``
(default). Which data ran is in ``data`` (development copy or full archive).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from common import record, run_sampled

LIMIT_MIB = 2048
CAPTIONED_CLASS = "CXR"  # the folder ``caption`` reads: ~10,000 images in MedNIST


def commands(source: str, tmp: Path, smoke: bool) -> dict[str, list[str]]:
    """Command name -> argv, in the order they must run."""
    data, cls, cap = str(tmp / "mednist"), str(tmp / "classifier"), str(tmp / "captioner")
    limit = ["--per-class-limit", "40"] if smoke else []
    smoke_flag = ["--smoke"] if smoke else []
    images = str(tmp / "mednist" / "images" / "MedNIST" / CAPTIONED_CLASS)
    return {
        "data prepare": ["data", "prepare", "--source", source, "--root", data, *limit],
        "train classifier": ["train", "classifier", "--data", data, "--run-dir", cls, *smoke_flag],
        "evaluate classifier": ["evaluate", cls],
        "train captioner": [
            *("train", "captioner", "--data", data, "--encoder", cls, "--run-dir", cap),
            *smoke_flag,
        ],
        "evaluate captioner": ["evaluate", cap],
        f"caption {CAPTIONED_CLASS} folder": [
            *("caption", images, "--run", cap, "--csv", str(tmp / "captions.csv"))
        ],
        "export saved_model": ["export", "--run", cap, "--out", str(tmp / "export")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="MedNIST archive, URL or folder")
    parser.add_argument("--out", help="default: experiments/benchmarks/memory.json")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    peaks, seconds, argv = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for name, command in commands(args.source, Path(tmp), args.smoke).items():
            print(f"\n== {name}", flush=True)
            full = [sys.executable, "-m", "captioning.cli", *command]
            run = run_sampled(full, on_line=None)
            if run["code"] != 0:
                raise SystemExit(f"{name} failed (exit {run['code']}): {shlex.join(full)}")
            peaks[name], seconds[name] = run["peak_rss_mib"]["run"], run["seconds"]
            argv[name] = shlex.join(["captioning", *command]).replace(tmp, "$TMP")
        card = json.loads((Path(tmp) / "mednist" / "data_card.json").read_text())
    result = {
        "smoke": args.smoke,
        "limit_mib": LIMIT_MIB,
        "peak_rss_mib": peaks,
        "largest_peak_mib": max(peaks.values()),
        "within_limit": max(peaks.values()) <= LIMIT_MIB,
        "seconds": seconds,
        "commands": argv,
    }
    print(json.dumps(result, indent=2))
    record("memory", result, args.out, data_card=card)


if __name__ == "__main__":
    main()
