"""``captioning serve [--run RUN]``: caption over HTTP, with a page for people
(``captioning.serving.app``). Upload limits default to ``captioning.serving.uploads``'s."""

from __future__ import annotations

import argparse
import os

from captioning.commands.options import add_run_option
from captioning.errors import CaptioningError
from captioning.serving.server import DEFAULT_REQUEST_TIMEOUT
from captioning.serving.uploads import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_FILES

DEFAULT_HOST = "127.0.0.1"  # this machine only: serving to others is a choice (--host 0.0.0.0)
DEFAULT_PORT = 8000


def add_parser(commands) -> None:
    parser = commands.add_parser("serve", help="caption over HTTP, with a page for people")
    add_run_option(parser, "a captioner run folder (default: the model bundled with the package)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_FILE_MB,
        help=f"largest file accepted (default: {DEFAULT_MAX_FILE_MB:g})",
    )
    parser.add_argument(
        "--max-files",
        type=int,
        default=DEFAULT_MAX_FILES,
        help=f"files per request (default: {DEFAULT_MAX_FILES})",
    )
    parser.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on POST /caption "
        "(default: $CAPTIONING_SERVE_TOKEN; none: open)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages of ORIGIN (e.g. https://example.org) call the service from a "
        "browser; repeatable (default: none, CORS off)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="S",
        help="seconds a client has to send a whole request, headers and upload, before it is "
        f"cut off (default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioning.bundled import resolve_run
    from captioning.serving.app import TOKEN_ENV, serve
    from captioning.serving.uploads import Limits

    try:
        limits = Limits(max_files=args.max_files, max_file_mb=args.max_upload_mb)
    except ValueError as err:
        raise CaptioningError(str(err)) from None
    if not args.request_timeout > 0:
        raise CaptioningError(f"--request-timeout must be > 0 (got {args.request_timeout:g})")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    origins = tuple(args.cors_origin)
    return serve(
        resolve_run(args.run), args.host, args.port, limits, token, origins, args.request_timeout
    )
