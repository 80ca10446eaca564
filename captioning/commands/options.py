"""Options and helpers several commands share, defined once: ``--run`` (with the old positional
form), ``--beam``, the ``train`` options, and the command line recorded in run folders.

Light to import: building the parser never loads TensorFlow (``captioning --help`` stays fast).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from captioning.config import STRATEGIES
from captioning.errors import CaptioningError


def add_beam_option(parser: argparse.ArgumentParser, fixed: bool = False) -> None:
    """``--beam K``: the beam width; None means the run's own ``beam_width`` (resolved by
    ``Captioner.resolve_beam``, the one place that applies the default)."""
    what = "beam width, fixed in the export" if fixed else "beam width"
    parser.add_argument("--beam", type=int, help=f"{what} (default: the run's beam_width)")


def add_run_option(parser: argparse.ArgumentParser, what: str, positional: bool = False) -> None:
    """``--run RUN``; with ``positional``, the older ``COMMAND RUN`` form is still accepted
    (hidden from the help; see ``resolve_run_argument``)."""
    parser.add_argument("--run", help=what)
    if positional:
        parser.add_argument("run_dir", nargs="?", help=argparse.SUPPRESS)


def resolve_run_argument(args: argparse.Namespace, command: str) -> str | None:
    """``--run``, or the deprecated positional run folder with a one-line note on stderr.
    Giving both is an error (which one was meant is not ours to guess)."""
    old = getattr(args, "run_dir", None)
    if old is not None and args.run is not None:
        raise CaptioningError(f"{command}: give the run once, as --run (not also positionally)")
    if old is not None:
        print(f"note: '{command} RUN' is deprecated; use '{command} --run {old}'", file=sys.stderr)
        return old
    return args.run


def require_run(args: argparse.Namespace, command: str) -> Path:
    """The run folder a command that has no default run needs (``evaluate``, ``calibrate``)."""
    run = resolve_run_argument(args, command)
    if run is None:
        raise CaptioningError(f"{command}: give the run folder with --run RUN")
    return Path(run)


def add_train_options(parser: argparse.ArgumentParser, kind: str) -> None:
    """Options every ``train`` command shares (the loop and its distribution are shared)."""
    parser.add_argument(
        "--config",
        help=f"experiment: a TOML file, or a built-in one by name ({kind}; default: the "
        "code's defaults, which it spells out)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument("--run-dir", help=f"run folder (default: runs/{kind}-<time>)")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a tiny subset")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy (sets train.strategy; default from the config: auto = "
        "multi-worker when $TF_CONFIG names a cluster, mirrored with several GPUs, else one "
        "device). See docs/multiworker.md",
    )


def train_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides plus those that dedicated options stand for (which win)."""
    overrides = list(args.set)
    if getattr(args, "strategy", None):
        overrides.append(f"train.strategy={args.strategy}")
    return overrides


def train_options(args: argparse.Namespace) -> dict:
    """The keyword arguments both ``train_classifier`` and ``train_captioner`` take."""
    return {
        "config_path": args.config,
        "overrides": train_overrides(args),
        "smoke": args.smoke,
        "data_root": args.data,
        "run_dir": args.run_dir,
        "command": command_line(),
    }


def report_training(run_dir: Path, result) -> None:
    """The last lines of a ``train`` command: the weights' digest and where the run is."""
    print(f"final weights sha256: {result.weights_sha256}")
    if result.chief:
        print(f"run folder: {run_dir}")
    else:
        print("done: this worker wrote no files (the chief writes the run folder)")


def command_line() -> str:
    """This process's command line as a user would type it (recorded in run folders)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
