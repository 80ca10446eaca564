"""``captioning data prepare`` through a real subprocess: exit codes, one-line errors, clean-up."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def prepare(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CAPTIONING_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CAPTIONING_MEDNIST_SOURCE", None)
    return subprocess.run(
        [sys.executable, "-m", "captioning.cli", "data", "prepare", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


def make_folder(folder: Path) -> Path:
    for name in ("Hand", "CXR"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            (folder / name / f"{i}.png").write_bytes(png(i * 60 + len(name)))
    (folder / "CXR" / "empty.png").write_bytes(b"")
    (folder / "Hand" / "text.jpeg").write_text("hello")
    return folder


def make_archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def assert_one_line_failure(result, *parts: str) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def assert_nothing_left(out: Path) -> None:
    """``out`` holds the target: after a failure it is empty (no target, no hidden folder)."""
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_good_folder_succeeds(tmp_path, out):
    source = make_folder(tmp_path / "source")
    result = prepare("--source", str(source), "--root", str(out / "ds"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "prepared 6 images in 2 classes" in result.stdout
    assert "2 skipped" in result.stdout
    assert "Traceback" not in result.stderr
    # each skipped file is named with its problem in the warnings
    assert "empty.png" in result.stderr and "empty file" in result.stderr
    assert "text.jpeg" in result.stderr and "not a PNG, JPEG or DICOM" in result.stderr
    card = json.loads((out / "ds" / "data_card.json").read_text())
    assert {s["path"] for s in card["skipped"]} == {"CXR/empty.png", "Hand/text.jpeg"}
    assert sorted(p.name for p in out.iterdir()) == ["ds"]


def test_strict_fails_on_the_first_unreadable_file(tmp_path, out):
    source = make_folder(tmp_path / "source")
    result = prepare("--source", str(source), "--root", str(out / "ds"), "--strict", home=tmp_path)
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert result.returncode != 0 and len(line) == 1 and "Traceback" not in result.stderr
    assert "empty.png" in line[0] or "text.jpeg" in line[0]
    assert_nothing_left(out)


def test_wrong_md5(tmp_path, out):
    archive = make_archive(tmp_path / "m.tar.gz", {"MedNIST/Hand/0.png": png(1)})
    result = prepare(
        "--source", str(archive), "--root", str(out / "ds"), "--md5", "0" * 32, home=tmp_path
    )
    assert_one_line_failure(result, str(archive), "md5 mismatch")
    assert_nothing_left(out)


def test_truncated_archive(tmp_path, out):
    members = {f"MedNIST/Hand/{i}.png": png(i) + os.urandom(4000) for i in range(10)}
    full = make_archive(tmp_path / "full.tar.gz", members).read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(full[: len(full) // 2])
    result = prepare("--source", str(archive), "--root", str(out / "ds"), home=tmp_path)
    assert_one_line_failure(result, str(archive), "truncated")
    assert_nothing_left(out)


def test_not_an_archive(tmp_path, out):
    archive = tmp_path / "photo.tar.gz"
    archive.write_bytes(png(3))
    result = prepare("--source", str(archive), "--root", str(out / "ds"), home=tmp_path)
    assert_one_line_failure(result, str(archive), "not a .tar.gz")
    assert_nothing_left(out)


def test_unsafe_archive(tmp_path, out):
    archive = make_archive(
        tmp_path / "evil.tar.gz", {"MedNIST/Hand/0.png": png(1), "../escape.png": png(2)}
    )
    result = prepare("--source", str(archive), "--root", str(out / "ds"), home=tmp_path)
    assert_one_line_failure(result, str(archive), "../escape.png", "unsafe")
    assert_nothing_left(out)
    assert not (tmp_path / "escape.png").exists() and not (out.parent / "escape.png").exists()


def test_missing_source(tmp_path, out):
    missing = tmp_path / "nowhere.tar.gz"
    result = prepare("--source", str(missing), "--root", str(out / "ds"), home=tmp_path)
    assert_one_line_failure(result, str(missing), "no such")
    assert_nothing_left(out)


def test_file_url_with_wrong_md5_leaves_no_partial_download(tmp_path, out):
    archive = make_archive(tmp_path / "m.tar.gz", {"MedNIST/Hand/0.png": png(1)})
    result = prepare(
        "--source", archive.as_uri(), "--root", str(out / "ds"), "--md5", "1" * 32, home=tmp_path
    )
    assert_one_line_failure(result, archive.as_uri(), "md5")
    assert_nothing_left(out)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_file_url_succeeds_and_records_the_md5(tmp_path, out):
    archive = make_archive(
        tmp_path / "m.tar.gz",
        {f"MedNIST/{c}/{i}.png": png(i + 9 * len(c)) for c in "AB" for i in range(2)},
    )
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    result = prepare(
        "--source", archive.as_uri(), "--root", str(out / "ds"), "--md5", digest, home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "ds" / "data_card.json").read_text())
    assert card["archive_md5"] == digest and card["classes"] == ["A", "B"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [(["--fractions", "0.5", "0.5", "0.5"], "--fractions"), (["--per-class-limit", "-1"], "limit")],
)
def test_bad_options(tmp_path, out, args, problem):
    source = make_folder(tmp_path / "source")
    result = prepare("--source", str(source), "--root", str(out / "ds"), *args, home=tmp_path)
    assert_one_line_failure(result, problem)
    assert_nothing_left(out)


def test_existing_dataset_without_force(tmp_path, out):
    source = make_folder(tmp_path / "source")
    assert (
        prepare("--source", str(source), "--root", str(out / "ds"), home=tmp_path).returncode == 0
    )
    result = prepare("--source", str(source), "--root", str(out / "ds"), home=tmp_path)
    assert_one_line_failure(result, str(out / "ds"), "--force")
