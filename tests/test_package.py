"""The package as a library user meets it: importing it prints nothing from TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_models_prints_no_tensorflow_start_up_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = (
        "import sys, captioning.models.encoder, tensorflow as tf; "
        "print('tensorflow' in sys.modules, tf.reduce_sum(tf.ones(3)).numpy())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "3.0"]  # TensorFlow was imported and runs
    assert done.stderr == ""  # without the hook: oneDNN, CUDA and CPU-feature lines
