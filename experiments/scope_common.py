"""Shared by the out-of-scope studies (``scope_*.py``): a run's encoder outputs and scope,
detection metrics, and the provenance every result JSON carries."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
sys.path.insert(0, str(ROOT))

from captioning.utils.provenance import git_state, provenance  # noqa: E402

START_CODE = git_state(ROOT)  # the code the study ran, even if the checkout moves on meanwhile


def record(name: str, result: dict, data: dict, out: str | None = None) -> Path:
    """Write ``result`` with the project's provenance (command, code, machine, versions, date)
    and ``data`` to ``experiments/results/<name>.json`` (or ``out``)."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    command = shlex.join(["python", *sys.argv]).replace(f"{ROOT}/", "")
    payload = {**provenance(command), "code": START_CODE, "data": data, **result}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {path}")
    return path


def detection(in_scores: np.ndarray, out_scores: np.ndarray, threshold: float) -> dict:
    """AUROC (out-of-scope as the positive class), the share of out-of-scope images accepted
    when 95% of in-distribution images are (``fpr_at_95_tpr``, in-distribution as positives),
    and, at the run's ``threshold``, the share of each side flagged out of scope."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    at95 = np.quantile(in_scores, 0.95)
    return {
        "auroc": round(float(roc_auc_score(labels, np.r_[in_scores, out_scores])), 6),
        "fpr_at_95_tpr": round(float(np.mean(out_scores <= at95)), 6),
        "flagged_out": round(float(np.mean(out_scores > threshold)), 6),
        "flagged_in": round(float(np.mean(in_scores > threshold)), 6),
    }


def run_scope(run_dir: Path):
    """The run's model, scope (fitted first when the run has none) and dataset."""
    import captioning.models.decoders  # noqa: F401  (a captioner run's model needs them)
    from captioning.calibrate import calibrate_run
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model
    from captioning.scope import Scope
    from captioning.utils.runs import read_json

    if Scope.load(run_dir) is None:
        calibrate_run(run_dir)
    run = read_json(run_dir / "run.json")
    return (
        load_model(run_dir / "best_model.keras"),
        Scope.load(run_dir),
        PreparedData(run["data_root"]),
    )


def to_64(pixels: np.ndarray) -> np.ndarray:
    """Any (H, W) uint8 array through the PNG decoding rules every image here goes through."""
    import io

    from PIL import Image

    from captioning.data.images import decode_image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return decode_image(buffer.getvalue())[0]
