"""``captioning caption`` as people call it, with the bundled model: folders searched
recursively, ``--csv``, a folder with no images, and the deprecated ``caption RUN IMAGE`` form."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from captioning.bundled import bundled_run
from captioning.captions.parse import parse_caption
from captioning.captions.templates import load_template_set

from helpers import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(mednist_small, tmp_path_factory):
    """Real images in nested folders, with a text file (skipped) and a broken PNG (an error)."""
    root = tmp_path_factory.mktemp("caption") / "scans"
    images = sorted((mednist_small / "images").rglob("*.jpeg"))[::60]
    for i, image in enumerate(images):
        target = root / image.parent.name / ("deep" if i % 2 else "") / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
    (root / "notes.txt").write_text("not an image, and not picked up from a folder")
    (root / "broken.png").write_bytes(b"\x89PNG truncated")
    return root


def test_folder_is_searched_recursively_and_written_as_csv(folder, tmp_path):
    done = cli("caption", str(folder), "--csv", str(tmp_path / "out.csv"), cwd=tmp_path)
    assert done.returncode == 1  # broken.png
    rows = list(csv.DictReader((tmp_path / "out.csv").read_text().splitlines()))
    images = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".jpeg", ".png"))
    assert [r["path"] for r in rows] == images and len(images) == 5
    assert not any("notes.txt" in r["path"] for r in rows)
    bad = [r for r in rows if r["error"]]
    assert [r["path"] for r in bad] == [str(folder / "broken.png")]
    fields = load_template_set("findings").fields  # the bundled run's set
    assert list(rows[0])[-len(fields) :] == [f"finding_{name}" for name in fields]
    for row in rows:
        if not row["error"]:
            assert row["caption"] and row["in_scope"] == "True"
            assert row["class"] in row["path"]  # the class folder it was copied into
            said = parse_caption(row["caption"], "findings").fields
            assert {f: row[f"finding_{f}"] for f in fields} == {f: said[f] or "" for f in fields}
    assert f"error: {folder / 'broken.png'}:" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left behind


def test_a_folder_without_images_is_an_error_entry(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    image = str(next(folder.rglob("*.jpeg")))
    done = cli("caption", str(tmp_path / "empty"), image, "--json", cwd=tmp_path)
    assert done.returncode == 1
    empty, good = (json.loads(line) for line in done.stdout.splitlines())
    assert "no PNG, JPEG or DICOM" in empty["error"] and "caption" in good


def test_the_old_run_first_form_still_works_with_a_note(folder, tmp_path):
    image = str(next(folder.rglob("*.jpeg")))
    new = cli("caption", image, "--run", str(bundled_run()), "--json", cwd=tmp_path)
    old = cli("caption", str(bundled_run()), image, "--json", cwd=tmp_path)
    assert new.returncode == old.returncode == 0, old.stderr[-2000:]
    assert old.stdout == new.stdout
    assert "deprecated" in old.stderr and "deprecated" not in new.stderr
