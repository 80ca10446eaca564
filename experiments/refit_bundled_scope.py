"""Refit the bundled captioner's out-of-scope rule with the current code, on the data it was
trained on, without retraining or re-bundling anything else:

    python experiments/refit_bundled_scope.py MEDNIST_PREPARED [--method auto]

MEDNIST_PREPARED is the development copy prepared by ``captioning data prepare`` (the manifest
must be the one the bundle names). The run is copied to a temporary folder, ``calibrate_run``
fits the scope there (statistics on train, limits on val; the calibration temperatures are not
touched), and ``scope.json``/``scope.npz`` come back into ``captioning/pretrained/captioner``.
``model_card.json`` then records the refit (command, commit, date), the new files' sha256 and
the test split's out-of-scope rate under the new rule; ``MODEL_CARD.md`` is rendered again. Like
``bundle_model.py``, it refuses a checkout with uncommitted code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bundle_model import CHECKED, ROOT, render_card, uncommitted

from captioning.utils.provenance import git_state

BUNDLE = ROOT / "captioning" / "pretrained"
SCOPE_FILES = ("scope.json", "scope.npz")


def refit(data_root: Path, method: str) -> None:
    """Fit the scope on a copy of the bundled captioner pointed at ``data_root``; copy it back."""
    from captioning.calibrate import calibrate_run

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "captioner"
        shutil.copytree(BUNDLE / "captioner", run)
        meta = json.loads((run / "run.json").read_text())
        meta["data_root"] = str(data_root.resolve())
        (run / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
        calibrate_run(run, method)
        for name in SCOPE_FILES:
            shutil.copy(run / name, BUNDLE / "captioner" / name)


def test_flagged(data_root: Path) -> float:
    """The share of the test split the bundled captioner's (new) rule turns away."""
    import captioning.models.decoders  # noqa: F401  (the captioner's layers)
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model
    from captioning.scope import Scope, encoder_outputs

    model = load_model(BUNDLE / "captioner" / "best_model.keras")
    scope = Scope.load(BUNDLE / "captioner")
    evidence = encoder_outputs(model, PreparedData(data_root).split("test").images)
    return 1.0 - float(scope.in_scope(scope.scores(evidence)).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the prepared development copy of MedNIST")
    parser.add_argument("--method", default="auto", help="a scope method (default: auto)")
    args = parser.parse_args(argv)
    dirty = uncommitted(ROOT)
    if dirty:
        raise SystemExit(f"{ROOT}: uncommitted changes in {'/ or '.join(CHECKED)}/: commit first")
    code = git_state(ROOT)  # before the refit rewrites the bundle (it would read as dirty)
    refit(args.data, args.method)
    card = json.loads((BUNDLE / "model_card.json").read_text())
    for name in SCOPE_FILES:
        data = (BUNDLE / "captioner" / name).read_bytes()
        card["files_sha256"][f"captioner/{name}"] = hashlib.sha256(data).hexdigest()
    card["test"]["out_of_scope_rate"] = round(test_flagged(args.data), 6)
    command = shlex.join(["python", *sys.argv]).replace(f"{ROOT}/", "")
    card["scope_refit"] = {"command": command, "code": code}
    card["scope_refit"]["method"] = json.loads((BUNDLE / "captioner" / "scope.json").read_text())[
        "method"
    ]
    (BUNDLE / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (BUNDLE / "MODEL_CARD.md").write_text(render_card(card))
    refitted, flagged = card["scope_refit"]["method"], card["test"]["out_of_scope_rate"]
    print(f"scope refitted ({refitted}); test out of scope {flagged}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
