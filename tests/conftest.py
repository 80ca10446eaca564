"""Shared fixtures and markers.

Real-data tests (marker ``mednist``, added to any test that uses a real-data fixture) read the
archive named by ``$CAPTIONING_TEST_ARCHIVE``. Without it they fetch the archive that
``captioning data prepare`` would (``$CAPTIONING_MEDNIST_SOURCE``, else the official one, md5
checked) into ``$CAPTIONING_HOME/downloads`` once, through the same code, and reuse it after.
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


def pytest_collection_modifyitems(items):
    """Tests that use a real-data fixture carry the ``mednist`` marker automatically."""
    real = {"mednist_archive", "mednist_small", "mednist_full"}
    for item in items:
        if real & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mednist)


def pytest_runtest_setup(item):
    """Skip (or, with ``$CAPTIONING_REQUIRE_SYSTEM_TESTS=1``, fail) a ``needs_*`` test whose
    program is not on PATH."""
    for marker, (what, programs) in SYSTEM_PROGRAMS.items():
        if item.get_closest_marker(marker) and not any(shutil.which(p) for p in programs):
            reason = f"needs {what}: none of {', '.join(programs)} on PATH"
            if os.environ.get(REQUIRE_SYSTEM_ENV) == "1":
                pytest.fail(f"{reason} (${REQUIRE_SYSTEM_ENV}=1)", pytrace=False)
            pytest.skip(reason)
