"""``captioning export [--run RUN] --out DIR --format saved_model [--beam K]``: a captioner run
as a model that serves without this package.

``saved_model`` writes ``DIR/saved_model`` (``tf.saved_model.save`` of
``export.serving.ServingModel``; signatures ``serving_default`` for encoded files and
``serving_pixels`` for uint8 arrays) and ``DIR/export.json`` (the run's identity, the beam, the
signatures' inputs and outputs, the command). ``onnx`` and ``litert`` are tried through
TensorFlow's converters and refused with one line when the model does not convert
(``export.formats``). Everything is built in a hidden staging folder beside ``DIR`` and renamed
into place only when complete: a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from captioning.bundled import resolve_run
from captioning.errors import CaptioningError
from captioning.export.formats import FORMATS

EXPORT_FILE = "export.json"
SAVED_MODEL = "saved_model"


class ExportError(CaptioningError):
    """A bad ``export`` request (format, output folder); ``str()`` is one line."""


def _signature_info(loaded_fn) -> dict:
    """Inputs and outputs (name -> dtype and shape) of a saved concrete function."""

    def spec(s):
        return {"dtype": s.dtype.name, "shape": [None if d is None else int(d) for d in s.shape]}

    inputs = {s.name: spec(s) for s in loaded_fn.structured_input_signature[1].values()}
    outputs = {k: spec(v) for k, v in sorted(loaded_fn.structured_outputs.items())}
    return {"inputs": inputs, "outputs": outputs}


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_request(fmt: str, out: Path) -> None:
    """Refuse, before any work, a used ``out`` or a missing converter."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists; give a new --out folder")
    from captioning.export.formats import check_available

    check_available(fmt)


def write_model(captioner, width: int, fmt: str, staging: Path) -> tuple[list[str], dict]:
    """The SavedModel (and ``fmt``'s file) in ``staging``: the files written and the saved
    signatures' inputs and outputs, read back from the saved model."""
    import tensorflow as tf

    from captioning.export.formats import convert
    from captioning.export.serving import ServingModel

    module = ServingModel(captioner, width)
    saved = staging / SAVED_MODEL
    tf.saved_model.save(module, str(saved), signatures=module.signatures())
    files = convert(fmt, saved, staging)  # onnx/litert: raises ExportError, or converts
    loaded = tf.saved_model.load(str(saved))
    return files, {name: _signature_info(fn) for name, fn in loaded.signatures.items()}


def export_body(captioner, width: int, fmt: str, files: list[str], signatures: dict) -> dict:
    """export.json's body but the command, timing and size: what was exported, from what."""
    import tensorflow as tf

    weights = (captioner.run_dir / "best_model.keras").read_bytes()
    scope = captioner.scope
    return {
        "format": fmt,
        "files": files,
        "run": str(captioner.run_dir),
        "run_command": captioner.run.get("command"),
        "run_code": captioner.run.get("code"),
        "model_sha256": hashlib.sha256(weights).hexdigest(),
        "classes": captioner.classes,
        **captioner.image_spec.card_fields(),  # what the signatures decode files to
        "templates": captioner.templates,
        "findings": list(captioner.finding_fields),  # outputs finding_<field>, in this order
        "beam": width,
        "max_length": captioner.search.max_length,
        "phrasing": captioner.search.phrasing,
        "scope": None if scope is None else {"method": scope.method, "threshold": scope.threshold},
        "temperatures": captioner.calibration["temperatures"] if captioner.calibration else {},
        "signatures": signatures,
        "command": None,  # set by export_run
        "tensorflow": tf.__version__,
    }


def export_run(
    run: str | Path | None,
    out: str | Path,
    fmt: str = "saved_model",
    beam: int | None = None,
    command: str | None = None,
) -> dict:
    """Export the captioner ``run`` (None: the bundled one) to ``out``; returns export.json's
    body. Raises ``ExportError``/``RunError`` (one line) and leaves nothing at ``out`` then."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    run_dir = resolve_run(run, kind="captioner")
    out = Path(out)
    check_request(fmt, out)
    started = time.perf_counter()
    from captioning.inference import Captioner

    captioner = Captioner(run_dir)
    width = captioner.resolve_beam(beam)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        files, signatures = write_model(captioner, width, fmt, staging)
        body = export_body(captioner, width, fmt, files, signatures)
        body.update(
            command=command,
            date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            export_seconds=round(time.perf_counter() - started, 1),
            saved_model_bytes=_folder_bytes(staging / SAVED_MODEL),
        )
        (staging / EXPORT_FILE).write_text(json.dumps(body, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return body
