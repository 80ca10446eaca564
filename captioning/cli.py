"""The ``captioning`` command line. Each subcommand parses its arguments here and calls one
function elsewhere; heavy imports (TensorFlow) happen only in the subcommands that need them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from captioning.commands.data import add_data_commands
from captioning.errors import CaptioningError
from captioning.utils import quiet


def _train(args) -> int:
    """Both ``train`` commands: the same options, the same loop, the same report."""
    options = {
        "config_path": args.config,
        "overrides": train_overrides(args),
        "smoke": args.smoke,
        "data_root": args.data,
        "run_dir": args.run_dir,
        "command": _command_line(),
    }
    if args.train_command == "captioner":
        from captioning.bundled import resolve_run
        from captioning.commands.train_captioner import train_captioner

        # any classifier run; without one, the MedNIST classifier bundled with the package
        run_dir, result = train_captioner(
            encoder_dir=resolve_run(args.encoder, "classifier"), **options
        )
    else:
        from captioning.commands.train_classifier import train_classifier

        run_dir, result = train_classifier(**options)
    _report_training(run_dir, result)
    return 0


def _report_training(run_dir, result) -> None:
    print(f"final weights sha256: {result.weights_sha256}")
    if result.chief:
        print(f"run folder: {run_dir}")
    else:
        print("done: this worker wrote no files (the chief writes the run folder)")


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
        choices=("auto", "default", "mirrored", "multiworker"),
        help="tf.distribute strategy (sets train.strategy; default from the config: auto = "
        "multi-worker when $TF_CONFIG names a cluster, mirrored with several GPUs, else one "
        "device). See docs/multiworker.md",
    )


def train_overrides(args) -> list[str]:
    """``--set`` overrides plus those that dedicated options stand for (which win)."""
    overrides = list(args.set)
    if getattr(args, "strategy", None):
        overrides.append(f"train.strategy={args.strategy}")
    return overrides


def _evaluate(args) -> int:
    from captioning.commands.evaluate import evaluate_run

    report = evaluate_run(
        Path(args.run_dir),
        data=args.data,
        split=args.split,
        out=Path(args.out) if args.out else None,
        beam=args.beam,
    )
    if not args.out:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0


def _caption(args) -> int:
    from captioning.bundled import resolve_run
    from captioning.commands.caption import caption_files

    targets = list(args.images)
    if args.run is None and len(targets) > 1 and _is_captioner_run(targets[0]):
        print(
            f"note: 'caption RUN_DIR IMAGE...' is deprecated; use "
            f"'caption IMAGE... --run {targets[0]}'",
            file=sys.stderr,
        )
        args.run = targets.pop(0)
    return caption_files(
        resolve_run(args.run),
        targets,
        csv_path=args.csv,
        beam=args.beam,
        as_json=args.json,
        attention_dir=args.attention_dir,
        keep_out_of_scope=args.keep_out_of_scope,
    )


def _serve(args) -> int:
    import os

    from captioning.bundled import resolve_run
    from captioning.serving.app import TOKEN_ENV, serve
    from captioning.serving.uploads import Limits

    try:
        limits = Limits(max_files=args.max_files, max_file_mb=args.max_upload_mb)
    except ValueError as err:
        raise CaptioningError(str(err)) from None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    return serve(resolve_run(args.run), args.host, args.port, limits, token)


def _is_captioner_run(path: str) -> bool:
    """The old form's first argument: a folder holding a captioner run."""
    meta = Path(path) / "run.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("kind") == "captioner"
    except (OSError, ValueError):
        return False


def _calibrate(args) -> int:
    from captioning.calibrate import calibrate_run

    keep = {} if args.keep is None else {"keep": args.keep}
    print(json.dumps(calibrate_run(Path(args.run_dir), args.method, **keep), indent=2))
    return 0


def _export(args) -> int:
    from captioning.export import export_run

    if not args.verbose:  # SavedModel saving logs renamed captured inputs at INFO (absl)
        logging.getLogger("absl").setLevel(logging.WARNING)
    body = export_run(args.run, args.out, fmt=args.format, beam=args.beam, command=_command_line())
    print(
        f"exported {body['run']} (beam {body['beam']}) as {args.format} to {args.out}: "
        f"{', '.join(body['files'])} ({body['saved_model_bytes'] / 1e6:.1f} MB SavedModel, "
        f"{body['export_seconds']:.0f} s)"
    )
    return 0


def _quickstart(args) -> int:
    from captioning.commands.quickstart import quickstart

    quickstart(args.source, Path(args.out), smoke=args.smoke, command=_command_line())
    return 0


def _command_line() -> str:
    import shlex

    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="captioning", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    add_data_commands(commands)

    train = commands.add_parser("train", help="train a model").add_subparsers(
        dest="train_command", required=True
    )
    clf = train.add_parser("classifier", help="pretrain the CNN encoder as a MedNIST classifier")
    clf.add_argument("--data", help="prepared dataset folder (default: $CAPTIONING_HOME/mednist)")
    add_train_options(clf, "classifier")
    clf.set_defaults(func=_train)
    cap = train.add_parser(
        "captioner", help="train an LSTM captioner on a pretrained encoder (two stages)"
    )
    cap.add_argument("--data", help="prepared dataset folder (default: the encoder run's dataset)")
    cap.add_argument(
        "--encoder",
        metavar="CLASSIFIER_RUN_DIR",
        help="any classifier run folder, trained on any dataset (default: the MedNIST classifier "
        "bundled with the package)",
    )
    add_train_options(cap, "captioner")
    cap.set_defaults(func=_train)

    ev = commands.add_parser("evaluate", help="score a run on its test split or on new images")
    ev.add_argument("run_dir", help="a run folder written by 'captioning train'")
    ev.add_argument(
        "--data",
        help="labelled folder or .tar.gz in the MedNIST layout "
        "(default: the run's own prepared dataset)",
    )
    ev.add_argument("--split", default="test", help="split of the run's dataset (default: test)")
    ev.add_argument("--out", help="write the JSON report here (default: stdout)")
    ev.add_argument(
        "--beam", type=int, help="captioner runs: beam width (default: the run's beam_width)"
    )
    ev.set_defaults(func=_evaluate)

    cap = commands.add_parser("caption", help="caption image files and folders")
    cap.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE_OR_FOLDER",
        help="PNG, JPEG or DICOM files (any size), or folders of them (searched recursively)",
    )
    cap.add_argument(
        "--run", help="a captioner run folder (default: the model bundled with the package)"
    )
    cap.add_argument("--csv", help="also write one row per image to this CSV file")
    cap.add_argument("--beam", type=int, help="beam width (default: the run's beam_width)")
    cap.add_argument("--json", action="store_true", help="one JSON object per image")
    cap.add_argument("--attention-dir", help="write attention overlays (PNG) here")
    cap.add_argument(
        "--keep-out-of-scope", action="store_true", help="caption out-of-scope images too, flagged"
    )
    cap.set_defaults(func=_caption)
    srv = commands.add_parser("serve", help="caption over HTTP, with a page for people")
    srv.add_argument(
        "--run", help="a captioner run folder (default: the model bundled with the package)"
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    srv.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest file accepted (default: 10)"
    )
    srv.add_argument("--max-files", type=int, default=16, help="files per request (default: 16)")
    srv.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on POST /caption "
        "(default: $CAPTIONING_SERVE_TOKEN; none: open)",
    )
    srv.set_defaults(func=_serve)
    cal = commands.add_parser("calibrate", help="fit a run's out-of-scope rule and temperatures")
    cal.add_argument("run_dir", help="a classifier or captioner run folder")
    cal.add_argument("--method", default="mahalanobis", choices=("msp", "energy", "mahalanobis"))
    cal.add_argument("--keep", type=float, help="share of val kept in scope (default 0.997)")
    cal.set_defaults(func=_calibrate)
    exp = commands.add_parser(
        "export", help="write a captioner as a self-contained model for serving (SavedModel)"
    )
    exp.add_argument("--run", help="a captioner run folder (default: the bundled model)")
    exp.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    exp.add_argument(
        "--format",
        default="saved_model",
        choices=("saved_model", "onnx", "litert"),
        help="saved_model (default); onnx and litert are tried and refused when they fail",
    )
    exp.add_argument("--beam", type=int, help="beam width, fixed (default: the run's beam_width)")
    exp.set_defaults(func=_export)
    quick = commands.add_parser(
        "quickstart", help="the whole job: prepare, classifier, captioner, evaluation, report"
    )
    quick.add_argument("--source", help="as for 'data prepare' (default: the official archive)")
    quick.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    quick.add_argument("--smoke", action="store_true", help="a one-minute run on a tiny subset")
    quick.set_defaults(func=_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``captioning`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if args.verbose:  # keep TensorFlow's C++ start-up lines (see captioning/quiet.py)
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
