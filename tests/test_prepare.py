"""``data prepare`` on folders built here and on the real archive: manifest, cache, data card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioning.data.dataset import PreparedData
from captioning.data.images import load_image
from captioning.data.prepare import PrepareOptions, prepare
from captioning.data.split import SPLITS
from captioning.errors import DataError

COLUMNS = ["path", "class", "label", "md5", "width", "height", "split"]


def write_png(path: Path, value: int, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def make_source(folder: Path) -> Path:
    """Three classes of tiny PNG/JPEG images, plus the awkward cases."""
    for i in range(4):
        write_png(folder / "Hand" / f"{i}.png", 10 + i)
        write_png(folder / "CXR" / f"{i}.png", 100 + i, size=(8, 4))
    Image.new("RGB", (16, 16), (0, 200, 0)).save(folder / "CXR" / "color.jpeg")
    write_png(folder / "HeadCT" / "nested" / "deep" / "a.png", 200)  # nested folders
    write_png(folder / "HeadCT" / "b.PNG", 201)  # upper-case suffix
    (folder / "HeadCT" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "HeadCT" / "notes.txt").write_text("not an image")  # unknown extension
    (folder / "HeadCT" / "scan.dcm").write_bytes(b"DICM")
    (folder / "Empty").mkdir()  # a class folder without images
    (folder / ".cache").mkdir()  # hidden: not a class
    write_png(folder / ".cache" / "x.png", 0)
    return folder


@pytest.fixture
def source(tmp_path) -> Path:
    return make_source(tmp_path / "source")


def run(source: Path, root: Path, **kwargs) -> dict:
    return prepare(root, PrepareOptions(source=str(source), **kwargs), root.parent / "downloads")


def test_manifest_columns_and_contents(source, tmp_path):
    root = tmp_path / "prepared"
    card = run(source, root)
    data = PreparedData(root)
    manifest = data.manifest
    assert list(manifest.columns) == COLUMNS
    assert data.classes == card["classes"] == ["CXR", "Hand", "HeadCT"]
    assert sorted(manifest["path"]) == sorted(
        [f"Hand/{i}.png" for i in range(4)]
        + [f"CXR/{i}.png" for i in range(4)]
        + ["CXR/color.jpeg", "HeadCT/nested/deep/a.png", "HeadCT/b.PNG"]
    )
    for row in manifest.itertuples():
        assert row.label == data.classes.index(row[2])  # row[2]: the 'class' column
        assert row.path.split("/")[0] == row[2]
        assert row.split in SPLITS
        assert len(row.md5) == 32
    cxr = manifest[manifest["path"] == "CXR/0.png"].iloc[0]
    assert (cxr["width"], cxr["height"]) == (8, 4)
    assert set(manifest["label"]) == {0, 1, 2}


def test_cache_matches_decoding_each_file(source, tmp_path):
    root = tmp_path / "prepared"
    run(source, root)
    data = PreparedData(root)
    images = np.load(root / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (len(data.manifest), 64, 64)
    for i, path in enumerate(data.manifest["path"]):
        np.testing.assert_array_equal(images[i], load_image(source / path))
    assert data.image_dir == source


def test_split_rows_line_up_with_the_manifest(source, tmp_path):
    root = tmp_path / "prepared"
    run(source, root)
    data = PreparedData(root)
    total = 0
    for name in SPLITS:
        split = data.split(name)
        total += len(split)
        for image, label, path in zip(split.images, split.labels, split.paths, strict=True):
            np.testing.assert_array_equal(image, load_image(source / path))
            assert data.classes[label] == path.split("/")[0]
    assert total == len(data.manifest)


def test_card_lists_skipped_files_and_empty_classes(source, tmp_path):
    root = tmp_path / "prepared"
    card = run(source, root)
    on_disk = json.loads((root / "data_card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    assert [s["path"] for s in card["skipped"]] == ["HeadCT/broken.png"]
    assert "corrupt" in card["skipped"][0]["reason"]
    assert card["empty_classes"] == ["Empty"]
    assert card["n_images"] == 11
    assert sum(card["split_sizes"].values()) == 11
    markdown = (root / "data_card.md").read_text()
    assert "HeadCT/broken.png" in markdown and "Empty" in markdown
    assert card["manifest_sha256"] in markdown


def test_duplicates_are_grouped_in_the_card(source, tmp_path):
    (source / "Hand" / "copy.png").write_bytes((source / "Hand" / "0.png").read_bytes())
    root = tmp_path / "prepared"
    card = run(source, root)
    manifest = PreparedData(root).manifest
    copies = manifest[manifest["path"].isin(["Hand/0.png", "Hand/copy.png"])]
    assert copies["md5"].nunique() == 1 and copies["split"].nunique() == 1
    assert card["duplicates"]["groups"] == 1
    assert card["duplicates"]["groups_across_splits"] == 0


def test_strict_fails_and_leaves_nothing(source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as info:
        run(source, out / "prepared", strict=True)
    assert "broken.png" in str(info.value) and "corrupt" in str(info.value)
    assert list(out.iterdir()) == []  # no target, no hidden building folder


def test_existing_dataset_needs_force(source, tmp_path):
    root = tmp_path / "prepared"
    run(source, root)
    first = (root / "data_card.json").read_text()
    with pytest.raises(DataError, match="--force"):
        run(source, root)
    assert (root / "data_card.json").read_text() == first
    write_png(source / "Hand" / "new.png", 50)
    card = run(source, root, force=True)
    assert card["n_images"] == 12
    assert len(PreparedData(root).manifest) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "source"]


def test_failed_rebuild_keeps_the_old_dataset(source, tmp_path):
    root = tmp_path / "prepared"
    run(source, root)
    first = (root / "manifest.csv").read_bytes()
    with pytest.raises(DataError):
        run(source, root, strict=True, force=True)
    assert (root / "manifest.csv").read_bytes() == first
    PreparedData(root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "source"]


def test_a_folder_that_is_not_a_dataset_is_never_replaced(source, tmp_path):
    root = tmp_path / "documents"
    root.mkdir()
    (root / "thesis.txt").write_text("years of work")
    for force in (False, True):
        with pytest.raises(DataError, match="not a prepared dataset") as info:
            run(source, root, force=force)
        assert str(root) in str(info.value)
        assert (root / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents", "source"]


def test_an_empty_existing_folder_is_used(source, tmp_path):
    root = tmp_path / "prepared"
    root.mkdir()
    run(source, root)
    PreparedData(root)


def test_hand_edited_manifest_is_refused(source, tmp_path):
    root = tmp_path / "prepared"
    run(source, root)
    manifest = root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",train", ",test", 1))
    with pytest.raises(DataError, match="checksum") as info:
        PreparedData(root)
    assert str(manifest) in str(info.value)


def test_missing_or_broken_dataset_files_are_data_errors(source, tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        PreparedData(tmp_path / "nowhere")
    root = tmp_path / "prepared"
    run(source, root)
    (root / "images.npy").unlink()
    with pytest.raises(DataError, match=r"images\.npy"):
        _ = PreparedData(root).images
    (root / "manifest.csv").unlink()
    with pytest.raises(DataError, match=r"manifest\.csv"):
        PreparedData(root)
    (root / "data_card.json").write_text("{ not json")
    with pytest.raises(DataError, match=r"data_card\.json"):
        PreparedData(root)


def test_numeric_class_names_stay_strings(tmp_path):
    source = tmp_path / "source"
    for name in ("0", "1", "007"):
        for i in range(3):
            write_png(source / name / f"{i}.png", 40 * i + len(name))
    root = tmp_path / "prepared"
    run(source, root)
    data = PreparedData(root)
    assert data.classes == ["0", "007", "1"]
    assert set(data.manifest["class"]) == {"0", "007", "1"}
    for row in data.manifest.itertuples():
        assert data.classes[row.label] == row[2]


def test_non_utf8_file_name_does_not_stop_the_run(source, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8
    try:
        write_png(source / "Hand" / name, 90)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    root = tmp_path / "prepared"
    card = run(source, root)
    manifest = PreparedData(root).manifest
    json.dumps(card)
    (root / "data_card.md").read_text(encoding="utf-8")
    assert len(manifest) == 11  # every other image is still there
    skipped = {s["path"]: s["reason"] for s in card["skipped"]}
    assert "UTF-8" in skipped["Hand/caf\\xe9.png"]
    assert "HeadCT/broken.png" in skipped


def test_archive_source_with_sidecar_md5(tmp_path):
    import hashlib
    import tarfile

    source = make_source(tmp_path / "build")
    tar_path = tmp_path / "mine.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(source, arcname="MedNIST")
    digest = hashlib.md5(tar_path.read_bytes()).hexdigest()
    (tmp_path / "mine.tar.gz.md5").write_text(f"{digest}  mine.tar.gz\n")
    card = run(tar_path, tmp_path / "prepared")
    assert card["archive_md5"] == digest
    assert card["n_images"] == 11
    data = PreparedData(tmp_path / "prepared")
    assert data.image_dir == tmp_path / "prepared" / "images" / "MedNIST"
    for i, path in enumerate(data.manifest["path"]):
        np.testing.assert_array_equal(data.images[i], load_image(data.image_dir / path))
    (tmp_path / "mine.tar.gz.md5").write_text("0" * 32 + "  mine.tar.gz\n")
    with pytest.raises(DataError, match="md5 mismatch"):
        run(tar_path, tmp_path / "again")
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("limit", [0, -1])
def test_per_class_limit_must_be_positive(source, tmp_path, limit):
    with pytest.raises(DataError, match="--per-class-limit"):
        run(source, tmp_path / "prepared", per_class_limit=limit)


def test_bad_fractions_are_a_data_error(source, tmp_path):
    with pytest.raises(DataError, match="fractions"):
        run(source, tmp_path / "prepared", fractions=(0.5, 0.5, 0.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


# --- the real archive ---------------------------------------------------------------------


def test_real_subset_has_six_classes_from_folder_names(mednist_small):
    data = PreparedData(mednist_small)
    names = sorted(p.name for p in data.image_dir.iterdir() if p.is_dir())
    assert data.classes == names
    assert len(data.classes) == 6
    assert (data.manifest.groupby("class").size() == 40).all()
    assert data.card["skipped"] == []
    for name in data.classes:
        for split in SPLITS:
            rows = data.manifest[
                (data.manifest["class"] == name) & (data.manifest["split"] == split)
            ]
            assert data.card["counts"][name][split] == len(rows)
    assert data.images.shape == (240, 64, 64)
    for i in (0, 77, 239):
        np.testing.assert_array_equal(
            data.images[i], load_image(data.image_dir / data.manifest["path"][i])
        )


def test_a_class_whose_images_are_all_unreadable_is_not_a_class(tmp_path):
    source = tmp_path / "src"
    for name in ("Good", "Other"):
        (source / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), 40 * i).save(source / name / f"{i}.png")
    (source / "Broken").mkdir()
    (source / "Broken" / "a.png").write_bytes(b"not an image")
    card = prepare(tmp_path / "out", PrepareOptions(source=str(source)), tmp_path / "dl")
    assert card["classes"] == ["Good", "Other"]
    assert card["empty_classes"] == ["Broken"]
    assert [s["path"] for s in card["skipped"]] == ["Broken/a.png"]
    manifest = PreparedData(tmp_path / "out").manifest
    assert sorted(manifest["label"].unique()) == [0, 1]
