"""The model that ships in the package: it loads from the installed files, its card agrees with
its files, and real MedNIST test-split images get the class and findings the card's evaluation
measured (findings read from the image's pixels with the bundled cut points)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from captioning.bundled import CARD_FILES, RUN_FILES, bundled_dir, bundled_run, resolve_run
from captioning.captions.findings import FIELDS, check_cutpoints, compute_findings
from captioning.captions.parse import parse_caption
from captioning.data.dataset import PreparedData
from captioning.data.images import load_image

from helpers import cli


def test_bundle_has_every_run_file_and_its_card_matches_them():
    folder = bundled_dir()
    for kind, names in RUN_FILES.items():
        assert {*names} <= {p.name for p in (folder / kind).iterdir()}, kind
    assert all((folder / name).is_file() for name in CARD_FILES)
    card = json.loads((folder / "model_card.json").read_text())
    for name, digest in card["files_sha256"].items():
        if name not in CARD_FILES:
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 10_000_000  # the budget for the shipped model files
    text = (folder / "MODEL_CARD.md").read_text()
    assert "CC BY-SA 4.0" in text and "Not for diagnosis" in text
    for kind in RUN_FILES:  # no path of the machine that trained it
        meta = json.loads((folder / kind / "run.json").read_text())
        assert "/" not in meta["command"].split()[0]
        assert meta["data_root"] is None


def test_resolve_run_uses_the_bundle_only_without_a_run(tmp_path):
    assert resolve_run(None) == bundled_run("captioner")
    assert resolve_run(str(tmp_path)) == tmp_path
    with pytest.raises(ValueError):
        bundled_run("decoder")


@pytest.mark.slow
def test_real_test_images_get_the_class_and_findings_the_card_expects(mednist_full, tmp_path):
    data = PreparedData(mednist_full)
    test = data.manifest[data.manifest["split"] == "test"]
    picked = test.groupby("class", sort=True).head(3)  # 3 per class, the first in the manifest
    files = [str(data.image_dir / p) for p in picked["path"]]
    cutpoints = check_cutpoints(json.loads((bundled_run() / "cutpoints.json").read_text()))
    truth = compute_findings(np.stack([load_image(f) for f in files]), cutpoints)
    done = cli("caption", *files, "--json", cwd=tmp_path)  # no --run: the bundled model
    assert done.returncode == 0, done.stderr[-2000:]
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["path"] for e in entries] == files
    for entry, (_, row), (_, want) in zip(
        entries, picked.iterrows(), truth.iterrows(), strict=True
    ):
        assert entry["in_scope"] is True and entry["class"] == row["class"], entry
        said = parse_caption(entry["caption"], "findings")
        assert said.class_name == row["class"], entry["caption"]
        assert {f: said.fields[f] for f in FIELDS} == {f: want[f] for f in FIELDS}, entry
        assert 0.5 < entry["confidence"]["class"] <= 1
