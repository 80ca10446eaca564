"""``captioning calibrate --run RUN``: fit a run's out-of-scope rule and confidence temperatures
(``captioning.calibrate``) and print what was fitted. ``calibrate RUN`` still works, with a
note."""

from __future__ import annotations

import argparse
import json

from captioning.commands.options import add_run_option, require_run
from captioning.scope import DEFAULT_KEEP, DEFAULT_METHOD, METHOD_CHOICES


def add_parser(commands) -> None:
    parser = commands.add_parser("calibrate", help="fit a run's out-of-scope rule and temperatures")
    add_run_option(parser, "a classifier or captioner run folder", positional=True)
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=METHOD_CHOICES,
        help=f"out-of-scope score (default: {DEFAULT_METHOD}: neighbours where every class has "
        "enough training images, else mahalanobis)",
    )
    parser.add_argument(
        "--keep",
        type=float,
        default=DEFAULT_KEEP,
        help=f"share of val kept in scope (default {DEFAULT_KEEP})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioning.calibrate import calibrate_run

    run_dir = require_run(args, "calibrate")
    print(json.dumps(calibrate_run(run_dir, args.method, args.keep), indent=2))
    return 0
