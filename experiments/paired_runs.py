"""Two captioners on the same test images, compared by paired bootstrap: is the first ahead of
the second on these images, or only on this draw of them?

    python experiments/paired_runs.py FIRST_EVAL SECOND_EVAL --name NAME [--group GROUP]

FIRST_EVAL and SECOND_EVAL are what ``captioning evaluate --run RUN --out FILE`` wrote for two
runs on the same dataset and split (same images, same references). Both caption sets are split
into tokens by the first run's vocabulary (the rule ``evaluate`` scores with) and compared with
``captioning.metrics.bootstrap.PairedBootstrap``: first minus second, BLEU-4, CIDEr-D and
ROUGE-L, with 95% intervals over 1,000 resamples of the test images (seed 0). The result goes
to ``experiments/results/<GROUP>/<NAME>.json`` with the project's provenance. It resamples
images, not cases or seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling module when run as a script
from scope_common import RESULTS, record

from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.metrics.bootstrap import PairedBootstrap


def captions_by_image(report: dict) -> dict[str, dict]:
    """path -> the report's entry of that image (``generated``, ``references``)."""
    return {entry["path"]: entry for entry in report["captions"]}


def compare(first: dict, second: dict) -> dict:
    """First minus second on the images both reports captioned (they must be the same set)."""
    a, b = captions_by_image(first), captions_by_image(second)
    if set(a) != set(b) or first.get("manifest_sha256") != second.get("manifest_sha256"):
        raise SystemExit("error: the two reports are not of the same dataset and images")
    paths = sorted(a)
    vocab = Vocabulary.load(Path(first["run_dir"]) / VOCABULARY_FILE)
    refs = [[vocab.tokenize(r) for r in a[p]["references"]] for p in paths]
    bootstrap = PairedBootstrap(refs)
    return bootstrap.compare(
        [vocab.tokenize(a[p]["generated"]) for p in paths],
        [vocab.tokenize(b[p]["generated"]) for p in paths],
    )


def describe(path: Path, report: dict) -> dict:
    """What the artifact records of one report: its file, checksum, run and scores."""
    keys = ("cider", "bleu4", "rouge_l", "distinct_share")
    return {
        "report": str(path),
        "report_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "run_dir": report.get("run_dir"),
        **{k: report.get(k) for k in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--name", required=True, help="file name of the artifact, no suffix")
    parser.add_argument("--group", default="paired_runs", help="subfolder of results")
    args = parser.parse_args()
    first, second = (json.loads(p.read_text()) for p in (args.first, args.second))
    result = {
        "first": describe(args.first, first),
        "second": describe(args.second, second),
        "split": first.get("split"),
        "n": len(first["captions"]),
        "first_minus_second": compare(first, second),
    }
    data = {"manifest_sha256": first.get("manifest_sha256"), "images": len(first["captions"])}
    record(args.name, result, data, out=RESULTS / args.group / f"{args.name}.json")


if __name__ == "__main__":
    main()
