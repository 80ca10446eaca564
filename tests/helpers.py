"""Small shared pieces of the tests (imported as ``helpers``: pytest puts ``tests/`` on the path,
and ``pythonpath`` in pyproject.toml says so for any import mode)."""

from __future__ import annotations

import numpy as np

# One tiny architecture, reused across shape, serialisation and training tests.
TINY = {"widths": [4, 8, 8], "depth": 1, "feature_size": 8}


def squares(n=48, classes=3, seed=0):
    """Class k = a bright 16x16 square in the k-th third of the image, plus noise.

    Returns images uint8 (n, 64, 64) and labels int32 (n,): learnable in a few steps.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, (n, 64, 64)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 24:40, 4 + 20 * k : 20 + 20 * k] = 220
    return images, labels.astype(np.int32)


def cli(*args: str, cwd=None, env: dict | None = None, timeout: int = 600):
    """Run ``python -m captioning.cli ARGS`` in ``cwd`` with this checkout first on the path;
    the completed process (text stdout/stderr)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "captioning.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def cli_here(*args: str, cwd=None, env: dict | None = None):
    """``cli`` in this process: ``captioning.cli.main(ARGS)`` in ``cwd`` with ``env`` added,
    stdout, stderr and the INFO log caught; the completed process (as ``cli`` returns it).

    For a test's setup (a training it reads, not the command's start-up): it saves the
    TensorFlow import of a new process (5-10 s). An uncaught exception propagates (with its
    traceback), where a subprocess would exit 1. Not ``caption``: it binds ``sys.stdout`` when
    imported (``caption_files(out=sys.stdout)``), so its output would not be caught here."""
    import contextlib
    import io
    import logging
    import os
    import subprocess

    from captioning.cli import main

    if "caption" in args[:1]:
        raise ValueError("cli_here cannot catch what caption writes: use cli")
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # what main's basicConfig sends to stderr
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root, tf_logger = logging.getLogger(), logging.getLogger("tensorflow")
    levels = root.level, tf_logger.level
    saved_env, here = dict(os.environ), os.getcwd()
    root.addHandler(handler)  # first: main's basicConfig then adds none of its own
    root.setLevel(logging.INFO)
    os.environ.update(env or {})
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as stop:  # argparse refusals
                code = stop.code if isinstance(stop.code, int) else 2
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved_env)
        root.removeHandler(handler)
        root.setLevel(levels[0])
        tf_logger.setLevel(levels[1])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


CLASSES = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"]


def tiny_captioner_run(run, decoder: str = "attention", max_length: int = 12):
    """Write an untrained tiny captioner run folder (encoder widths [4, 8], decoder width 8,
    the findings template set's vocabulary) into ``run``; return its Keras model, so the
    caller can fit a scope on what it likes."""
    from captioning import config as cfg
    from captioning.captions.findings import FIELDS
    from captioning.captions.templates import load_template_set, render
    from captioning.captions.vocabulary import Vocabulary
    from captioning.models.captioner import build_captioner
    from captioning.models.classifier import build_classifier
    from captioning.models.decoders import build_decoder
    from captioning.utils.runs import write_json

    tset = load_template_set("findings")
    values = {f: v[0] for f, v in FIELDS.items()}
    vocab = Vocabulary.from_captions(render(c, values, tset, i) for c in CLASSES for i in range(5))
    config = cfg.CaptionerConfig()
    config.decoder.max_length = max_length
    clf = build_classifier(cfg.ModelConfig(widths=[4, 8]), len(CLASSES))
    sizes = {"attention_dim": 8} if decoder == "attention" else {}
    layer = build_decoder(decoder, len(vocab), embed_dim=8, hidden=8, **sizes)
    model = build_captioner(clf.get_layer("encoder"), clf.get_layer("logits"), layer, max_length)
    model.save(run / "best_model.keras")
    vocab.save(run / "vocabulary.json")
    write_json(run / "config.json", cfg.to_dict(config))
    write_json(run / "run.json", {"kind": "captioner", "classes": CLASSES, "templates": "findings"})
    return model
