"""``captioning evaluate --run RUN``: score a classifier or captioner run on its own split or on
labelled images; the report is built by ``captioning.evaluation``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from captioning._moved import moved_name
from captioning.commands.options import add_beam_option, add_run_option, require_run
from captioning.evaluation import evaluate_run

_MOVED = ("classification_report_dict", "predict_probabilities", "write_confusion")


def add_parser(commands) -> None:
    parser = commands.add_parser("evaluate", help="score a run on its test split or on new images")
    add_run_option(parser, "a run folder written by 'captioning train'", positional=True)
    parser.add_argument(
        "--data",
        help="labelled folder or .tar.gz in the MedNIST layout "
        "(default: the run's own prepared dataset)",
    )
    parser.add_argument(
        "--split", default="test", help="split of the run's dataset (default: test)"
    )
    parser.add_argument("--out", help="write the JSON report here (default: stdout)")
    add_beam_option(parser)
    parser.add_argument(
        "--lexicon",
        help="lexicon of the label columns the captions are read for (a shipped name or a "
        "JSON file; default: medpix; captioning/lexicons/README.md)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = evaluate_run(
        require_run(args, "evaluate"),
        data=args.data,
        split=args.split,
        out=Path(args.out) if args.out else None,
        beam=args.beam,
        lexicon=args.lexicon,
    )
    if not args.out:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0


def __getattr__(name: str):
    """The classifier helpers moved to ``captioning.evaluation.classifier``; their old import
    path still works, loaded on first use (building the parser stays free of TensorFlow)."""
    if name in _MOVED:
        return moved_name(__name__, name, "captioning.evaluation.classifier")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
