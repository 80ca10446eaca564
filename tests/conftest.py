"""Shared fixtures and markers.

Real-data tests (marker ``mednist``, added to any test that uses a real-data fixture) read the
archive named by ``$CAPTIONING_TEST_ARCHIVE``. Without it they fetch the archive that
``captioning data prepare`` would (``$CAPTIONING_MEDNIST_SOURCE``, else the official one, md5
checked) into ``$CAPTIONING_HOME/downloads`` once, through the same code, and reuse it after
(the test workers take turns on the download's lock, so one fetches and the other finds it).
They never skip: no archive and no network is a failure that says how to name a local copy.

Tests that need a program pip cannot install carry a ``needs_*`` marker (see
``SYSTEM_PROGRAMS``): they skip, with the reason, where the program is missing, and fail
instead when ``$CAPTIONING_REQUIRE_SYSTEM_TESTS=1`` (CI installs the programs and sets it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_harness.py runs this file's rules in a sandbox

ARCHIVE_ENV = "CAPTIONING_TEST_ARCHIVE"
# MedPix 2.0 (real CT/MR images with radiologists' captions; not downloadable as one archive):
# tests marked ``medpix`` read the copy this names, skip without it, and fail instead when
# ``$CAPTIONING_REQUIRE_SYSTEM_TESTS=1`` (CI names its copy)
MEDPIX_ENV = "CAPTIONING_TEST_MEDPIX"
MEDPIX_SLICE_CASES = {"train": 16, "val": 4}  # whole cases per split in ``medpix_slice``
REQUIRE_SYSTEM_ENV = "CAPTIONING_REQUIRE_SYSTEM_TESTS"
# marker -> (what it is for, executables: any one of them will do)
SYSTEM_PROGRAMS = {
    "needs_java": ("a Java runtime (METEOR)", ("java",)),
    "needs_chromium": (
        "Chromium (browser tests)",
        ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"),
    ),
}


def _archive_or_fail() -> Path:
    """The real archive: ``$CAPTIONING_TEST_ARCHIVE``, else what ``data prepare`` would fetch."""
    value = os.environ.get(ARCHIVE_ENV)
    if value:
        path = Path(value).expanduser()
        if not path.is_file():
            pytest.fail(f"${ARCHIVE_ENV}={value}: no such file", pytrace=False)
        return path
    from captioning.data.prepare import default_source, fetch, is_url
    from captioning.errors import DataError
    from captioning.utils.paths import captioning_home

    source = default_source()
    if not is_url(source):  # $CAPTIONING_MEDNIST_SOURCE names a local copy
        path = Path(source).expanduser()
        if not path.is_file():
            pytest.fail(f"{source}: not an archive file; set ${ARCHIVE_ENV}", pytrace=False)
        return path
    try:
        return fetch(source, captioning_home() / "downloads")
    except DataError as err:
        problem = str(err)  # failed outside the handler: one line, no chained traceback
    pytest.fail(
        f"no MedNIST archive for the real-data tests ({problem}); to use a local copy, set "
        f"{ARCHIVE_ENV}=/path/to/MedNIST.tar.gz",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def mednist_archive() -> Path:
    """The real MedNIST ``.tar.gz`` (official or a development copy)."""
    return _archive_or_fail()


def _prepare(archive: Path, root: Path, per_class_limit: int | None) -> Path:
    from captioning.data.prepare import PrepareOptions, prepare

    prepare(
        root,
        PrepareOptions(source=str(archive), per_class_limit=per_class_limit),
        downloads=root.parent / "downloads",
    )
    return root


@pytest.fixture(scope="session")
def mednist_small(mednist_archive, tmp_path_factory) -> Path:
    """A prepared dataset of the first 40 real images of each class (240 images)."""
    return _prepare(mednist_archive, tmp_path_factory.mktemp("small") / "mednist", 40)


@pytest.fixture(scope="session")
def mednist_full(mednist_archive, tmp_path_factory) -> Path:
    """The whole archive, prepared (about 30 s): real duplicates, real class balance."""
    return _prepare(mednist_archive, tmp_path_factory.mktemp("full") / "mednist", None)


@pytest.fixture(scope="session")
def medpix_archive() -> Path:
    """The MedPix 2.0 development archive (``medpix2/captions.csv`` and ``medpix2/images``)."""
    value = os.environ.get(MEDPIX_ENV)
    if not value:
        reason = f"needs MedPix 2.0: set ${MEDPIX_ENV}=/path/to/medpix2_dev.tar.gz"
        if os.environ.get(REQUIRE_SYSTEM_ENV) == "1":
            pytest.fail(f"{reason} (${REQUIRE_SYSTEM_ENV}=1)", pytrace=False)
        pytest.skip(reason)
    path = Path(value).expanduser()
    if not path.is_file():
        pytest.fail(f"${MEDPIX_ENV}={value}: no such file", pytrace=False)
    return path


@pytest.fixture(scope="session")
def medpix_slice(medpix_archive, tmp_path_factory) -> Path:
    """A folder with ``captions.csv`` (every column of the original) and ``images/`` for the
    first whole cases of each split (``MEDPIX_SLICE_CASES``): real free text, a few dozen images."""
    import tarfile

    import pandas as pd

    root = tmp_path_factory.mktemp("medpix")
    with tarfile.open(medpix_archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        table_name = next(n for n in members if n.endswith("/captions.csv"))
        table = pd.read_csv(tar.extractfile(members[table_name]))
        cases = [
            case
            for split, count in MEDPIX_SLICE_CASES.items()
            for case in sorted(table.loc[table.split == split, "case"].unique())[:count]
        ]
        table = table[table.case.isin(cases)]
        images = root / "images"
        images.mkdir()
        folder = table_name.rsplit("/", 1)[0] + "/images/"
        for name in table.image:
            (images / name).write_bytes(tar.extractfile(members[folder + name]).read())
    table.to_csv(root / "captions.csv", index=False)
    return root


@pytest.fixture(scope="session")
def medpix_labelled(medpix_slice, tmp_path_factory) -> tuple[Path, str]:
    """``medpix_slice`` prepared with its label columns (``data prepare --label-columns
    modality,plane,location``, run in this process): the dataset root and what the command
    printed. Shared by the tests that train on it (each writes its runs elsewhere)."""
    from helpers import cli_here

    work = tmp_path_factory.mktemp("medpix_labelled")
    done = cli_here(
        "data", "prepare", "--captions", medpix_slice / "captions.csv",
        "--images", medpix_slice / "images", "--root", work / "ds",
        "--label-columns", "modality,plane,location",
        cwd=work, env={"CAPTIONING_HOME": str(work / "home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "ds", done.stdout


def pytest_collection_modifyitems(items):
    """Tests that use a real-data fixture carry the ``mednist`` (or ``medpix``) marker."""
    markers = {
        "mednist": {"mednist_archive", "mednist_small", "mednist_full"},
        "medpix": {"medpix_archive", "medpix_slice", "medpix_labelled"},
    }
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in markers.items():
            if fixtures & used:
                item.add_marker(getattr(pytest.mark, marker))


def pytest_runtest_setup(item):
    """Skip (or, with ``$CAPTIONING_REQUIRE_SYSTEM_TESTS=1``, fail) a ``needs_*`` test whose
    program is not on PATH."""
    for marker, (what, programs) in SYSTEM_PROGRAMS.items():
        if item.get_closest_marker(marker) and not any(shutil.which(p) for p in programs):
            reason = f"needs {what}: none of {', '.join(programs)} on PATH"
            if os.environ.get(REQUIRE_SYSTEM_ENV) == "1":
                pytest.fail(f"{reason} (${REQUIRE_SYSTEM_ENV}=1)", pytrace=False)
            pytest.skip(reason)
