"""``captioning caption IMAGE_OR_FOLDER... [--run RUN]``: captions for image files.

Without ``--run`` the bundled model (``captioning.bundled``) captions, so a fresh install needs
no training. Folders are walked recursively for PNG, JPEG and DICOM files; files named
explicitly are always tried. Each file gets one line (or one JSON object with ``--json``), in
order; ``--csv FILE`` also writes one row per file, atomically (``CSV_COLUMNS``, then
``finding_<field>`` for each field of the run's template set: the stated value, empty where the
caption states none or there is no caption). A file that cannot be read gets
an error entry and the rest are still captioned (exit code 1 if any failed); an out-of-scope
image gets one line saying so and no caption (an answer, exit code 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from captioning._moved import moved_name
from captioning.commands.options import add_beam_option, add_run_option
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import CAPTION_SUFFIXES, ImageError, open_image
from captioning.utils.atomic import atomic_path

if TYPE_CHECKING:  # imported where captions are made: building the parser stays light
    from captioning.inference import Captioner

CHUNK = 512  # images decoded and captioned at a time: bounds memory on large folders
CSV_COLUMNS = (
    *("path", "caption", "class", "prob", "in_scope", "ood_score", "out_of_scope_reason", "error"),
)


def add_parser(commands) -> None:
    parser = commands.add_parser("caption", help="caption image files and folders")
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE_OR_FOLDER",
        help="PNG, JPEG or DICOM files (any size), or folders of them (searched recursively)",
    )
    add_run_option(parser, "a captioner run folder (default: the model bundled with the package)")
    parser.add_argument("--csv", help="also write one row per image to this CSV file")
    add_beam_option(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument("--attention-dir", help="write attention overlays (PNG) here")
    parser.add_argument(
        "--keep-out-of-scope", action="store_true", help="caption out-of-scope images too, flagged"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioning.bundled import resolve_run

    targets = list(args.images)
    if args.run is None and len(targets) > 1 and is_captioner_run(targets[0]):
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


def is_captioner_run(path: str) -> bool:
    """The old ``caption RUN_DIR IMAGE...`` form's first argument: a folder holding a
    captioner run."""
    meta = Path(path) / "run.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("kind") == "captioner"
    except (OSError, ValueError):
        return False


def gather_images(targets: list[str]) -> list[str]:
    """Files as given, folders expanded (recursively, sorted) to their image files."""
    paths: list[str] = []
    for target in targets:
        folder = Path(target)
        if folder.is_dir():
            found = sorted(
                str(p) for p in folder.rglob("*") if p.suffix.lower() in CAPTION_SUFFIXES
            )
            paths.extend(found or [target])  # an empty folder: reported as an error entry
        else:
            paths.append(target)
    return paths


def read_inputs(paths: list[str], spec: ImageSpec = DEFAULT_IMAGE) -> list[tuple[str, object]]:
    """(path, decoded file (``open_image``: pixels of the run's ``spec`` and colour) or the
    one-line problem) per path."""
    inputs = []
    for path in paths:
        try:
            inputs.append((path, open_image(path, spec=spec)))
        except ImageError as err:
            problem = "folder has no PNG, JPEG or DICOM files" if Path(path).is_dir() else None
            inputs.append((path, problem or err.problem))
    return inputs


def missing_parts_note(captioner: Captioner, run_dir) -> str | None:
    """One line for a run made before scopes and calibration, else None."""
    missing = [
        name
        for name, have in (
            ("out-of-scope scores", captioner.scope),
            ("calibrated confidences", captioner.calibration),
        )
        if have is None
    ]
    if not missing:
        return None
    if captioner.run.get("labelled") is False:  # a caption file without the encoder's classes
        return (
            f"note: {run_dir}: no out-of-scope check or calibrated confidences: its training "
            "captions have no class labels of the encoder's classes"
        )
    return (
        f"note: {run_dir}: this run has no {' and no '.join(missing)} (made before they "
        f"existed); add them with 'captioning calibrate --run {run_dir}'"
    )


def format_line(entry: dict) -> str:
    """The plain-text line for one entry (errors go to stderr, the rest to stdout)."""
    if "error" in entry:
        return f"error: {entry['path']}: {entry['error']}"
    if "caption" not in entry:
        return f"{entry['path']}: out of scope ({entry['out_of_scope_reason']}): no caption"
    flag = (
        f"[OUT OF SCOPE: {entry['out_of_scope_reason']}] " if entry.get("in_scope") is False else ""
    )
    return f"{entry['path']}: {flag}{entry['caption']}  [{entry['class']} {entry['prob']:.4f}]"


def write_csv(entries: list[dict], path: Path, fields=()) -> None:
    """One row per file (``CSV_COLUMNS``, then ``finding_<field>`` for each of ``fields``),
    written to a temporary name and renamed."""
    columns = [*CSV_COLUMNS, *(f"finding_{name}" for name in fields)]
    rows = [{**e, **{f"finding_{k}": v for k, v in e.get("findings", {}).items()}} for e in entries]
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def caption_files(
    run_dir: str | Path,
    paths: list[str],
    beam: int | None = None,
    as_json: bool = False,
    attention_dir: str | Path | None = None,
    out=sys.stdout,
    keep_out_of_scope: bool = False,
    csv_path: str | Path | None = None,
) -> int:
    """Caption image files and folders; print one line (or JSON object) per file, in order.
    Returns the exit code (1 if any file failed)."""
    from captioning.entries import caption_entries
    from captioning.evaluation.overlays import write_attention_png
    from captioning.inference import Captioner

    captioner = Captioner(run_dir)
    note = missing_parts_note(captioner, run_dir)
    if note:
        print(note, file=sys.stderr)
    files = gather_images(paths)
    entries: list[dict] = []
    for start in range(0, len(files), CHUNK):
        inputs = read_inputs(files[start : start + CHUNK], captioner.image_spec)
        chunk = caption_entries(
            captioner,
            inputs,
            beam=beam,
            keep_out_of_scope=keep_out_of_scope,
            attention=attention_dir is not None,
        )
        for i, entry in enumerate(chunk):
            maps = entry.pop("attention", None)
            if maps is not None:
                name = Path(attention_dir) / f"{start + i:03d}_{Path(entry['path']).stem}.png"
                write_attention_png(inputs[i][1].pixels, maps["words"], maps["maps"], name)
                entry["attention_png"] = str(name)
            if as_json:
                print(json.dumps(entry), file=out)
            else:
                print(format_line(entry), file=sys.stderr if "error" in entry else out)
        entries.extend(chunk)
    if csv_path is not None:
        write_csv(entries, Path(csv_path), captioner.finding_fields)
    if attention_dir is not None and not captioner.has_attention:
        print("note: this decoder has no attention; no overlays written", file=sys.stderr)
    return 1 if any("error" in e for e in entries) else 0


def __getattr__(name: str):
    """``Captioner`` is ``captioning.inference.Captioner``; the old import path from here still
    works, loaded on first use so that building the CLI parser stays light."""
    if name == "Captioner":
        return moved_name(__name__, name, "captioning.inference")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
