"""Formats other than a SavedModel, converted from the SavedModel with the converters
TensorFlow offers, or refused with one line saying why.

- ``litert``: ``tf.lite.TFLiteConverter.from_saved_model`` with LiteRT's built-in ops. The
  serving signature reads image files and writes text (a ``map_fn`` over strings, JPEG/PNG
  decoding, hash-table lookups, a ``while_loop`` search); the converter refuses those, and the
  refusal names the first ops it could not lower.
- ``onnx``: the ``tf2onnx`` converter (``python -m tf2onnx.convert --saved-model``), which is
  what Keras's own ONNX export calls for the TensorFlow backend; refused when it is not
  installed or when the conversion fails. With tf2onnx 1.17 it fails on this model: its lookup
  tables are not found, the seed's int64 bit shifts have no conversion, and the PNG signature
  (a non-UTF-8 string constant) stops it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from captioning.errors import CaptioningError
from captioning.utils.quiet import stderr_to_devnull

# what ``export --format`` accepts; the first is the default
FORMATS = ("saved_model", "onnx", "litert")
KEEP = "use --format saved_model"


class FormatError(CaptioningError):
    """A format this model cannot be exported to; ``str()`` is one line naming it and why."""


def check_available(fmt: str) -> None:
    """Refuse before any work when the converter ``fmt`` needs is missing."""
    if fmt == "onnx" and importlib.util.find_spec("tf2onnx") is None:
        raise FormatError(
            "onnx: cannot export: converting TensorFlow to ONNX needs the tf2onnx package, "
            f"which is not installed; {KEEP}"
        )


def _ops(message: str) -> str:
    names = sorted(set(re.findall(r"'(tf\.\w+)' op", message)))
    return ", ".join(names[:4]) or message.strip().splitlines()[0][:200]


def to_litert(saved: Path, staging: Path) -> list[str]:
    """``staging/model.tflite`` from the SavedModel's ``serving_default``, built-in ops only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved), signature_keys=["serving_default"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with stderr_to_devnull():  # the converter prints its own MLIR errors: ours is one line
            model = converter.convert()
    except Exception as err:  # ConverterError and friends: the message lists the failed ops
        raise FormatError(
            f"litert: cannot export: LiteRT's built-in ops cannot run this model's image-file "
            f"input and text output (the converter failed on {_ops(str(err))}); {KEEP}"
        ) from None
    (staging / "model.tflite").write_bytes(model)
    return ["model.tflite"]


def _onnx_problem(log: str) -> str:
    """What tf2onnx's log says it could not convert, in a few words."""
    kinds = sorted(
        set(re.findall(r"Failed to convert node .*?tf2onnx\.onnx_opset\.\w+\.(\w+)", log))
    )
    problems = [f"no conversion for {', '.join(kinds[:4])}"] if kinds else []
    if "Could not find table resource" in log:
        problems.append("lookup tables")
    last = log.strip().splitlines()[-1].strip() if log.strip() else "no output"
    if re.match(r"\w+(Error|Exception)\b", last):  # it stopped on an exception: say which
        problems.append(last[:120])
    return "; ".join(problems) or last[:200]


def to_onnx(saved: Path, staging: Path) -> list[str]:
    """``staging/model.onnx`` from the SavedModel's ``serving_default`` with tf2onnx."""
    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved),
         "--signature_def", "serving_default", "--output", str(staging / "model.onnx")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not (staging / "model.onnx").is_file():
        raise FormatError(
            f"onnx: cannot export: tf2onnx failed ({_onnx_problem(done.stderr)}); {KEEP}"
        )
    return ["model.onnx"]


def convert(fmt: str, saved: Path, staging: Path) -> list[str]:
    """Files written in ``staging`` for ``fmt``, beside the SavedModel ``saved``."""
    if fmt == "litert":
        return [saved.name, *to_litert(saved, staging)]
    if fmt == "onnx":
        return [saved.name, *to_onnx(saved, staging)]
    return [saved.name]
