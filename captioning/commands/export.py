"""``captioning export [--run RUN] --out DIR [--format F] [--beam K]``: a captioner as a model
that serves without this package (``captioning.export``)."""

from __future__ import annotations

import argparse
import logging

from captioning.commands.options import add_beam_option, add_run_option, command_line
from captioning.export.formats import FORMATS


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export", help="write a captioner as a self-contained model for serving (SavedModel)"
    )
    add_run_option(parser, "a captioner run folder (default: the bundled model)")
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    parser.add_argument(
        "--format",
        default=FORMATS[0],
        choices=FORMATS,
        help=f"{FORMATS[0]} (default); {' and '.join(FORMATS[1:])} are tried and refused when "
        "they fail",
    )
    add_beam_option(parser, fixed=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioning.export import export_run

    if not args.verbose:  # SavedModel saving logs renamed captured inputs at INFO (absl)
        logging.getLogger("absl").setLevel(logging.WARNING)
    body = export_run(args.run, args.out, fmt=args.format, beam=args.beam, command=command_line())
    print(
        f"exported {body['run']} (beam {body['beam']}) as {args.format} to {args.out}: "
        f"{', '.join(body['files'])} ({body['saved_model_bytes'] / 1e6:.1f} MB SavedModel, "
        f"{body['export_seconds']:.0f} s)"
    )
    return 0
