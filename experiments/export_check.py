"""Does the exported SavedModel caption as ``captioning caption`` does? Export a captioner run
(default: the bundled one), caption N real MedNIST images from the archive with both, and
record agreement (caption, class, scope and its reason, each finding, probabilities), export
time, SavedModel size and timings, and the sha256 of the weights and of the whole bundle:

    python experiments/export_check.py --archive MedNIST.tar.gz [--run RUN] [--n 500] \
        [--out experiments/results/export/saved_model_bundled.json]

The SavedModel runs in a separate interpreter that imports TensorFlow and never ``captioning``
(checked). The images are every 40th JPEG of each class in archive order, interleaved by class.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing

SERVE = """
import json, sys, time
import tensorflow as tf
start = time.perf_counter()
model = tf.saved_model.load(sys.argv[1])
loaded = time.perf_counter() - start
files = [open(p, "rb").read() for p in json.load(open(sys.argv[2]))]
timings = []
for _ in range(2):  # the first call builds the graph's kernels; the second is steady state
    start = time.perf_counter()
    out = model.signatures["serving_default"](images=tf.constant(files))
    timings.append(time.perf_counter() - start)
rows = [{k: (v[i].decode() if isinstance(v[i], bytes) else v[i].item())
         for k, v in ((k, t.numpy()) for k, t in out.items())} for i in range(len(files))]
leaked = sorted(m for m in sys.modules if m.split(".")[0] == "captioning")
print(json.dumps({"rows": rows, "load_s": loaded, "call_s": timings, "leaked": leaked}))
"""


def real_images(archive: Path, n: int) -> list[tuple[str, bytes]]:
    """``n`` JPEG members, every 40th of each class, interleaved by class."""
    picked: dict[str, list] = {}
    seen: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpeg"):
                cls = member.name.split("/")[-2]
                seen[cls] = seen.get(cls, 0) + 1
                if seen[cls] % 40 == 1 and len(picked.setdefault(cls, [])) < n:
                    picked[cls].append((member.name, tar.extractfile(member).read()))
    return [x for group in zip(*picked.values(), strict=False) for x in group][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archive", required=True)
    parser.add_argument("--run", help="captioner run folder (default: the bundled one)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", default="experiments/results/export/saved_model_bundled.json")
    args = parser.parse_args()

    from captioning.bundled import bundle_sha256, resolve_run
    from captioning.commands.caption import caption_files
    from captioning.export import export_run
    from captioning.utils.provenance import provenance

    run = resolve_run(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        body = export_run(run, tmp / "model", command="experiments/export_check.py")
        paths = []
        for name, data in real_images(Path(args.archive), args.n):
            paths.append(tmp / "images" / name.replace("/", "_"))
            paths[-1].parent.mkdir(exist_ok=True)
            paths[-1].write_bytes(data)
        listing = tmp / "files.json"
        listing.write_text(json.dumps([str(p) for p in paths]))
        done = subprocess.run(
            [sys.executable, "-c", SERVE, str(tmp / "model" / "saved_model"), str(listing)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        served = json.loads(done.stdout.strip().splitlines()[-1])
        start = time.perf_counter()
        text = io.StringIO()
        caption_files(run, [str(p) for p in paths], as_json=True, out=text)
        cli_s = time.perf_counter() - start
    expected = [json.loads(line) for line in text.getvalue().splitlines()]
    rows = served["rows"]
    pairs = list(zip(expected, rows, strict=True))
    both_in = [(e, r) for e, r in pairs if e["in_scope"] and r["in_scope"]]
    conf = [
        abs(r[f"confidence_{k}"] - v)
        for e, r in both_in
        for k, v in e["confidence"].items()
        if k != "class" and v is not None
    ]
    metrics = {
        "images": len(pairs),
        "same_caption_and_class": sum(
            e.get("caption", "") == r["caption"] and e.get("class", r["class"]) == r["class"]
            for e, r in pairs
        ),
        "same_in_scope": sum(e["in_scope"] == r["in_scope"] for e, r in pairs),
        "same_out_of_scope_reason": sum(
            r["out_of_scope_reason"] == e.get("out_of_scope_reason", "") for e, r in pairs
        ),
        "findings_compared": sum(len(e.get("findings", {})) for e, _ in pairs),
        "same_findings": sum(
            r[f"finding_{field}"] == (value or "")
            for e, r in pairs
            for field, value in e.get("findings", {}).items()
        ),
        "in_scope": sum(e["in_scope"] for e in expected),
        "max_abs_diff_class_probability": max(
            abs(r["class_probability"] - e["prob"]) for e, r in both_in
        ),
        # absolute: the CLI's score is rounded to 6 decimals, and a training image of the
        # archive is its own nearest neighbour (score 0 under the neighbours rule)
        "max_abs_diff_ood_score": max(abs(r["ood_score"] - e["ood_score"]) for e, r in pairs),
        "ood_score_zero": sum(e["ood_score"] == 0 for e in expected),
        "max_abs_diff_finding_confidence": max(conf) if conf else None,
        "first_words": dict(
            zip(
                *np.unique([r["caption"].split(" ")[0] for r in rows], return_counts=True),
                strict=True,
            )
        ),
        "saved_model_process_imported_captioning": served["leaked"],
        "export_seconds": body["export_seconds"],
        "saved_model_bytes": body["saved_model_bytes"],
        "saved_model_load_seconds": round(served["load_s"], 2),
        "saved_model_call_seconds": [round(t, 2) for t in served["call_s"]],
        "cli_caption_files_seconds_with_model_load": round(cli_s, 2),
    }
    metrics["first_words"] = {str(k): int(v) for k, v in metrics["first_words"].items()}
    command = shlex.join(["python", "experiments/export_check.py", *sys.argv[1:]])
    record = {
        **provenance(command),
        "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
        # tests/test_artifacts.py: this record is stale once the bundled weights change
        "model_weights_sha256": hashlib.sha256((run / "best_model.keras").read_bytes()).hexdigest(),
        "bundle_sha256": bundle_sha256(run),  # weights, scope, temperatures, vocabulary, config
        "export": {k: body[k] for k in ("beam", "max_length", "phrasing", "scope", "model_sha256")},
        "images_from": f"{Path(args.archive).name}: every 40th JPEG per class, archive order",
        "metrics": metrics,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
