"""``captioning data captions`` end to end on a small real dataset, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from captioning.captions.findings import FIELDS
from captioning.captions.parse import parse_caption
from captioning.data.template_captions import load_cutpoints, read_captions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def captioned(mednist_small, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("captions") / "mednist"
    shutil.copytree(mednist_small, root)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for templates in ("findings", "class"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "captioning.cli",
                "data",
                "captions",
                "--root",
                str(root),
                "--templates",
                templates,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "captioned 240 images" in done.stdout
    return root


def test_csv_references_parse_back_to_their_fields(captioned):
    frame = read_captions(captioned, "findings")
    assert len(frame) == 240
    refs = [c for c in frame.columns if c.startswith("reference_")]
    assert len(refs) >= 5
    assert {"path", "split", "class", "quality", *FIELDS} <= set(frame.columns)
    for _, row in frame.iterrows():
        fields = {k: row[k] for k in ("quality", *FIELDS)}
        for col in refs:
            assert parse_caption(row[col], "findings").matches(row["class"], fields), row[col]


def test_card_and_cutpoints(captioned):
    card = json.loads((captioned / "captions" / "findings_card.json").read_text())
    assert card["n_images"] == 240 and card["vocabulary_size"]["all"] > 20
    for field in FIELDS:
        info = card["fields"][field]
        assert abs(sum(info["balance"].values()) - 1) < 1e-3
        assert 0 < info["class_only_accuracy"]["train"] <= 1
    assert (captioned / "captions" / "findings_card.md").read_text().startswith("# Caption card")
    assert load_cutpoints(captioned)["cuts"] == card["cutpoints"]["cuts"]
    class_card = json.loads((captioned / "captions" / "class_card.json").read_text())
    assert class_card["n_references"] == 1 and class_card["fields"] == {}


def test_unknown_template_set_is_a_one_line_error(captioned):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "captioning.cli",
            "data",
            "captions",
            "--root",
            str(captioned),
            "--templates",
            "nope",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: unknown template set")


def test_a_user_set_by_folder_or_by_name_from_the_environment(captioned, tmp_path):
    """``--templates FOLDER`` (one set in it), and a name found in ``$CAPTIONING_TEMPLATES``."""
    from captioning.captions.templates import load_template_set

    root = tmp_path / "mednist"
    shutil.copytree(captioned, root)
    folder = tmp_path / "sets"
    folder.mkdir()
    text = load_template_set("class").path.read_text()
    (folder / "mine.toml").write_text(text.replace('name = "class"', 'name = "mine"'))
    command = [sys.executable, "-m", "captioning.cli", "data", "captions", "--root", str(root)]
    for templates, extra in ((str(folder), {}), ("mine", {"CAPTIONING_TEMPLATES": str(folder)})):
        (root / "captions" / "mine.csv").unlink(missing_ok=True)
        done = subprocess.run(
            [*command, "--templates", templates],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **extra},
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "template set 'mine'" in done.stdout
        assert read_captions(root, "mine")["reference_0"].equals(
            read_captions(root, "class")["reference_0"]
        )


def test_cutpoints_of_another_version_are_refitted(captioned, tmp_path):
    from captioning.data.template_captions import build_captions

    root = tmp_path / "old"
    shutil.copytree(captioned, root)
    path = root / "captions" / "cutpoints.json"
    old = json.loads(path.read_text())
    old["version"] = 1
    old["cuts"] = {"extent": [0.1, 0.2], "density": [0.1, 0.2], "position": [-1.5, 1.5]}
    path.write_text(json.dumps(old))
    build_captions(root, "findings")
    assert load_cutpoints(root)["cuts"] == load_cutpoints(captioned)["cuts"]


def test_captions_are_rebuilt_when_the_set_text_changes(captioned, tmp_path):
    """Captions are keyed by the set's content: rewording a set rebuilds them on the next
    read; an unchanged set (or a comment edit) reuses them."""
    from captioning.captions.templates import load_template_set
    from captioning.data.caption_data import caption_frame
    from captioning.data.dataset import PreparedData

    root = tmp_path / "data"
    shutil.copytree(captioned, root)
    mine = tmp_path / "mine.toml"
    text = (
        load_template_set("findings").path.read_text().replace('name = "findings"', 'name = "mine"')
    )
    mine.write_text(text)
    data = PreparedData(root)
    first = caption_frame(data, str(mine))
    csv = root / "captions" / "mine.csv"
    built = csv.stat().st_mtime_ns
    assert first["reference_0"].str.contains("Anatomy fills").all()
    mine.write_text("# a comment\n" + text)
    caption_frame(data, str(mine))
    assert csv.stat().st_mtime_ns == built  # same content: not rebuilt
    mine.write_text(text.replace("Anatomy fills", "Anatomy occupies"))
    again = caption_frame(data, str(mine))
    assert again["reference_0"].str.contains("Anatomy occupies").all()
    assert (again["reference_1"] == first["reference_1"]).all()
    card = json.loads((root / "captions" / "mine_card.json").read_text())
    assert card["template_sha256"] == load_template_set(mine).sha256
    assert card["templates"]["0"].startswith("Examination: {class}. Anatomy occupies")
