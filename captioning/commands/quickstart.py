"""``captioning quickstart``: the whole mission with the default configs, then a report.

Stages (each printed with its elapsed time): prepare MedNIST -> pretrain the encoder as a
classifier -> evaluate it on the test split -> write the captions -> train the attention
captioner (frozen encoder, then end to end) -> evaluate it on the test split (beam 3) ->
``report.md`` with the PNGs it links. Everything lands under ``--out``:
``mednist/`` (prepared data), ``runs/classifier``, ``runs/captioner``, ``report/``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from captioning.commands.options import command_line

STAGES = (
    "prepare",
    "classifier",
    "evaluate classifier",
    "captioner",
    "evaluate captioner",
    "report",
)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "quickstart", help="the whole job: prepare, classifier, captioner, evaluation, report"
    )
    parser.add_argument("--source", help="as for 'data prepare' (default: the official archive)")
    parser.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    parser.add_argument("--smoke", action="store_true", help="a one-minute run on a tiny subset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quickstart(args.source, Path(args.out), smoke=args.smoke, command=command_line())
    return 0


class Progress:
    """Prints ``[i/n] stage`` on entry and the stage's seconds on exit; keeps the timings."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def stage(self, name: str):
        progress = self

        class _Stage:
            def __enter__(self):
                self.tic = time.perf_counter()
                print(f"\n[{STAGES.index(name) + 1}/{len(STAGES)}] {name}", flush=True)

            def __exit__(self, kind, *exc):
                if kind is None:
                    progress.seconds[name] = round(time.perf_counter() - self.tic, 1)
                    total = time.perf_counter() - progress.start
                    print(f"    {name}: {progress.seconds[name]:.1f} s (total {total:.0f} s)")

        return _Stage()


def quickstart(source: str | None, out: Path, smoke: bool, command: str) -> Path:
    """Run every stage into ``out``; return the report's path. An existing prepared dataset in
    ``out/mednist`` is reused; existing run folders resume (so a rerun finishes the job)."""
    from captioning.commands.evaluate import evaluate_run
    from captioning.commands.train_captioner import train_captioner
    from captioning.commands.train_classifier import train_classifier
    from captioning.data.prepare import PrepareOptions, default_source, prepare
    from captioning.evaluation.report import write_report
    from captioning.utils.paths import captioning_home

    out = Path(out).expanduser().resolve()
    data, runs = out / "mednist", out / "runs"
    progress = Progress()
    with progress.stage("prepare"):
        if (data / "data_card.json").exists():
            print(f"    reusing {data}")
        else:
            options = PrepareOptions(
                source=source or default_source(), per_class_limit=40 if smoke else None
            )
            prepare(data, options, downloads=captioning_home() / "downloads")
    with progress.stage("classifier"):
        classifier, _ = train_classifier(
            data_root=data, run_dir=runs / "classifier", smoke=smoke, command=command
        )
    with progress.stage("evaluate classifier"):
        evaluate_run(classifier, out=classifier / "eval" / "test.json")
    with progress.stage("captioner"):
        captioner, _ = train_captioner(
            encoder_dir=classifier,
            data_root=data,
            run_dir=runs / "captioner",
            smoke=smoke,
            command=command,
        )
    with progress.stage("evaluate captioner"):
        evaluate_run(captioner, out=captioner / "eval" / "test.json")
    with progress.stage("report"):
        report_dir = out / "report"
        shutil.rmtree(report_dir, ignore_errors=True)
        path = write_report(
            out / "report.md",
            data=data,
            classifier=classifier,
            captioner=captioner,
            timings=progress.seconds,
            command=command,
        )
    total = time.perf_counter() - progress.start
    print(f"\ndone in {total:.0f} s: {path}")
    return path
