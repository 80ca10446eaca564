"""Shared fixtures. Real-data tests (marker ``mednist``) read the archive named by
``$CAPTIONING_TEST_ARCHIVE``; asked to run without it, they fail rather than skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ARCHIVE_ENV = "CAPTIONING_TEST_ARCHIVE"


@pytest.fixture(scope="session")
def mednist_archive() -> Path:
    """The real MedNIST ``.tar.gz`` (official or a development copy)."""
    value = os.environ.get(ARCHIVE_ENV)
    if not value:
        pytest.fail(
            f"${ARCHIVE_ENV} is not set: point it at MedNIST.tar.gz, "
            "or deselect real-data tests with -m 'not mednist'"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        pytest.fail(f"${ARCHIVE_ENV}={value}: no such file")
    return path


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
