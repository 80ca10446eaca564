"""The whole job against the seed notebook, in one invocation on one machine:

    pip install -e ".[bench]"                       # tf_keras, for the seed notebook
    python benchmarks/quickstart.py --source /path/to/MedNIST.tar.gz [--out FILE] [--smoke]

1. ``captioning quickstart`` (prepare, classifier, its evaluation, captioner, its evaluation,
   report) in a subprocess: wall seconds per stage, read from its progress lines as they
   stream, and the peak resident memory of each stage (the process's RSS sampled every 0.1 s);
2. the seed notebook's training alone (``benchmarks/seed_notebook.py``: Keras 2
   ImageDataGenerator + ``model.fit``, 5 epochs) on the data quickstart prepared;
3. the previous default classifier on the same data (``captioning train classifier --set
   model.stem_stride=2 --set train.epochs=5``: the architecture and epochs before the stride-4
   stem, on today's input pipeline), the reference of the captioner's speed target.

Writes ``seed_notebook_seconds``, ``quickstart_seconds``, ``ratio`` (quickstart over the seed
notebook), ``stages`` (name -> seconds), ``peak_rss_mib`` (stage -> MiB),
``previous_classifier`` (its seconds) and ``captioner_over_previous_classifier`` and the machine
to ``experiments/benchmarks/quickstart.json`` (default). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from common import record, run_sampled

STAGE_LINE = re.compile(r"^\[\d+/\d+\] (.+)$")  # quickstart's "[i/n] stage" progress line


def run_quickstart(source: str, out: Path, smoke: bool) -> dict:
    """Run ``captioning quickstart``; per-stage seconds (its own timings) and peak RSS."""
    command = [sys.executable, "-m", "captioning.cli", "quickstart", "--source", source]
    command += ["--out", str(out), *(["--smoke"] if smoke else [])]
    seconds = {}
    stage = ["start"]

    def on_line(line: str) -> str | None:
        if match := STAGE_LINE.match(line.strip()):
            stage[0] = match.group(1)
            return stage[0]
        if match := re.match(rf"^\s+{re.escape(stage[0])}: ([\d.]+) s", line):
            seconds[stage[0]] = float(match.group(1))
        return None

    run = run_sampled(command, on_line)
    if run["code"] != 0:
        raise SystemExit(f"quickstart failed (exit {run['code']}): {shlex.join(command)}")
    return {
        "command": shlex.join(command),
        "seconds": run["seconds"],
        "stages": seconds,
        "peak_rss_mib": {k: v for k, v in run["peak_rss_mib"].items() if k != "run"},
    }


def run_seed_notebook(data: Path, smoke: bool) -> dict:
    """The seed notebook's training (its own JSON line: ``train_seconds``, accuracy)."""
    command = [sys.executable, str(Path(__file__).with_name("seed_notebook.py"))]
    command += ["--data", str(data), *(["--epochs", "1", "--limit", "256"] if smoke else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"seed notebook failed: {done.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "command": shlex.join(command)}


PREVIOUS_DEFAULT = ["model.stem_stride=2", "train.epochs=5"]  # the classifier before stride 4


def run_previous_classifier(data: Path, run_dir: Path, smoke: bool) -> dict:
    """Train the previous default classifier; its loop and command seconds."""
    command = [sys.executable, "-m", "captioning.cli", "train", "classifier", "--data", str(data)]
    command += ["--run-dir", str(run_dir), *(["--smoke"] if smoke else [])]
    for override in PREVIOUS_DEFAULT:
        command += ["--set", override]
    run = run_sampled(command, lambda line: None)
    if run["code"] != 0:
        raise SystemExit(f"previous classifier failed (exit {run['code']}): {shlex.join(command)}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "command": shlex.join(command),
        "seconds": round(metrics["train_seconds_this_process"], 1),  # the fit, as quickstart's
        "command_seconds": run["seconds"],  # with start-up, data load and test evaluation
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="MedNIST archive, URL or folder")
    parser.add_argument("--out", help="default: experiments/benchmarks/quickstart.json")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    load_before = os.getloadavg()  # other work on the machine slows both alike
    with tempfile.TemporaryDirectory(prefix="bench-quickstart-") as tmp:
        quick = run_quickstart(args.source, Path(tmp) / "quickstart", args.smoke)
        data = Path(tmp) / "quickstart" / "mednist"
        card = json.loads((data / "data_card.json").read_text())
        seed = run_seed_notebook(data, args.smoke)
        previous = run_previous_classifier(data, Path(tmp) / "previous", args.smoke)
    result = {
        "smoke": args.smoke,
        "load_average_before": load_before,
        "seed_notebook_seconds": seed["train_seconds"],
        "quickstart_seconds": quick["seconds"],
        "ratio": round(quick["seconds"] / seed["train_seconds"], 2),
        "stages": quick["stages"],
        "peak_rss_mib": quick["peak_rss_mib"],
        "previous_classifier": previous,
        "captioner_over_previous_classifier": round(
            quick["stages"]["captioner"] / previous["seconds"], 2
        ),
        "quickstart": quick,
        "seed_notebook": seed,
    }
    print(json.dumps(result, indent=2))
    record("quickstart", result, args.out, data_card=card)


if __name__ == "__main__":
    main()
