"""Options several commands share, defined once: ``--run`` (with the old positional form), and
``--beam``. Light to import: building the parser never loads TensorFlow."""

from __future__ import annotations

import argparse
import sys


def add_beam_option(parser: argparse.ArgumentParser, fixed: bool = False) -> None:
    """``--beam K``: the beam width; None means the run's own ``beam_width`` (resolved by
    ``TrainedCaptioner.resolve_beam``)."""
    what = "beam width, fixed in the export" if fixed else "beam width"
    parser.add_argument("--beam", type=int, help=f"{what} (default: the run's beam_width)")


def add_run_option(parser: argparse.ArgumentParser, what: str, positional: bool = False) -> None:
    """``--run RUN``; with ``positional``, the older ``COMMAND RUN`` form is still accepted (see
    ``resolve_run_argument``)."""
    parser.add_argument("--run", help=what)
    if positional:
        parser.add_argument("run_dir", nargs="?", help=argparse.SUPPRESS)


def resolve_run_argument(args: argparse.Namespace, command: str) -> str | None:
    """``--run``, or the deprecated positional run folder with a one-line note on stderr."""
    old = getattr(args, "run_dir", None)
    if old is not None and args.run is not None:
        raise SystemExit(f"error: {command}: give the run once, as --run (not also positionally)")
    if old is not None:
        print(f"note: '{command} RUN' is deprecated; use '{command} --run {old}'", file=sys.stderr)
        return old
    return args.run
