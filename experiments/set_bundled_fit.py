"""Set how the bundled runs bring a file that is not square to 64x64, without retraining:

    python experiments/set_bundled_fit.py [--fit stretch]

The bundled runs were trained before ``image_fit`` existed, so they read as ``pad``
(``captioning.data.image_spec``). Their data, MedNIST, holds square images only, so the setting
changes no weight, statistic or test metric: only how ``caption``, ``serve`` and ``export``
decode new files that are not square. It writes ``image_fit`` into both runs' ``run.json``,
their new sha256 into ``model_card.json`` with a record of this step (command, commit), and
renders ``MODEL_CARD.md`` again. Like ``bundle_model.py``, it refuses a checkout with
uncommitted code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys

from bundle_model import CHECKED, ROOT, render_card, uncommitted

from captioning.data.image_spec import FITS
from captioning.utils.provenance import git_state

BUNDLE = ROOT / "captioning" / "pretrained"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", choices=FITS, default="stretch")
    args = parser.parse_args(argv)
    if uncommitted(ROOT):
        raise SystemExit(f"{ROOT}: uncommitted changes in {'/ or '.join(CHECKED)}/: commit first")
    code = git_state(ROOT)
    card = json.loads((BUNDLE / "model_card.json").read_text())
    for kind in ("classifier", "captioner"):
        path = BUNDLE / kind / "run.json"
        meta = json.loads(path.read_text())
        meta["image_fit"] = args.fit
        path.write_text(json.dumps(meta, indent=2) + "\n")
        card["files_sha256"][f"{kind}/run.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
    command = shlex.join(["python", *sys.argv]).replace(f"{ROOT}/", "")
    card["image_fit"] = {"fit": args.fit, "command": command, "code": code}
    (BUNDLE / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (BUNDLE / "MODEL_CARD.md").write_text(render_card(card))
    print(f"bundled runs decode files that are not square with fit {args.fit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
