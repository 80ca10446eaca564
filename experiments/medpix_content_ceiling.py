"""The ceiling of the shipped MedPix lexicon on every MedPix 2.0 reference caption: what share of
the captions state each label column (modality, plane, body system), and how often what they
state is the image's label (docs/metrics.md quotes it).

    python experiments/medpix_content_ceiling.py ARCHIVE_OR_CAPTIONS_CSV

Reads ``captions.csv`` (from the archive, or as a file), reads each caption with the lexicon
and the project's one tokenisation rule exactly as ``evaluate`` reads references
(``captioning.evaluation.truth.read_column``), and writes
``experiments/results/medpix_content_ceiling.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import tarfile
from io import BytesIO
from pathlib import Path

import pandas as pd
from scope_common import record

from captioning.captions.lexicon import load_lexicon
from captioning.captions.tokenize import tokenize
from captioning.evaluation.truth import CONTENT_STATS, read_column


def read_captions(source: Path) -> tuple[pd.DataFrame, str]:
    """The caption table and the sha256 of its bytes, from a ``.tar.gz`` or a CSV file."""
    if source.suffix == ".csv":
        raw = source.read_bytes()
    else:
        with tarfile.open(source) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/captions.csv"))
            raw = tar.extractfile(member).read()
    return pd.read_csv(BytesIO(raw)), hashlib.sha256(raw).hexdigest()


def ceiling(table: pd.DataFrame) -> dict:
    """Per lexicon column: images scored (``n``), labels the lexicon cannot score, and the
    shares stated, right when stated and ambiguous over the reference captions."""
    lexicon, out = load_lexicon("medpix"), {}
    for name, column in lexicon.columns.items():
        truth = [column.truth(v) for v in table[name]]
        keep = [i for i, v in enumerate(truth) if v is not None]
        texts = [tokenize(str(table["caption"].iloc[i])) for i in keep]
        arrays = read_column(column, [truth[i] for i in keep], texts)
        out[name] = {"n": len(keep), "unscored": len(truth) - len(keep)}
        out[name] |= {stat: rule(*arrays) for stat, rule in CONTENT_STATS.items()}
    return out


def main(argv: list[str] | None = None) -> None:
    """Read the captions, score the ceiling, record it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="medpix2_dev.tar.gz or its captions.csv")
    args = parser.parse_args(argv)
    table, sha = read_captions(args.source)
    data = {"captions": "captions.csv", "images": len(table), "captions_sha256": sha}
    record("medpix_content_ceiling", {"ceiling": ceiling(table)}, data)


if __name__ == "__main__":
    main()
