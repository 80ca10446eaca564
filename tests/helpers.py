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
