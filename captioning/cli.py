"""The ``captioning`` command line. Each subcommand is a module of ``captioning.commands`` with
``add_parser(subparsers)`` (its options) and ``run(args) -> int`` (its steps); heavy imports
(TensorFlow) happen only when a command runs, so ``captioning --help`` stays fast."""

from __future__ import annotations

import argparse
import logging
import sys

from captioning.commands import (
    calibrate,
    caption,
    data,
    evaluate,
    export,
    quickstart,
    serve,
    train,
)
from captioning.commands.options import train_overrides
from captioning.errors import CaptioningError
from captioning.utils import quiet

DESCRIPTION = "Caption medical images: prepare data, train, evaluate, caption, serve, export."
# in the order ``captioning --help`` lists them: the job's order, then the tools
COMMANDS = (data, train, evaluate, caption, serve, calibrate, export, quickstart)

__all__ = ["COMMANDS", "build_parser", "main", "train_overrides"]


def build_parser() -> argparse.ArgumentParser:
    """The ``captioning`` parser: ``-v`` and one subparser per module of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="captioning", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``captioning`` console script: parse, set up logging, run the
    command, and turn the errors users can act on into one line and an exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if args.verbose:  # keep TensorFlow's C++ start-up lines (see captioning/utils/quiet.py)
        quiet.uninstall()
    else:  # tf.distribute logs every collective it builds at INFO
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except CaptioningError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, file too large, permission denied, ...
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
