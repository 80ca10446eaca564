"""The test harness itself: real-data tests fetch their archive or fail in one line, and
``needs_*`` tests skip, or fail when system tests are required. Each case runs this project's
conftest.py on a tiny test file in a sandbox (pytester), so the real hooks decide."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

# Sandboxed runs are in-process and forget the modules imported after pytester started, but
# numpy cannot load twice in one process: import what conftest.py will use up front.
import captioning.data.prepare  # noqa: F401

CONFTEST = Path(__file__).with_name("conftest.py")
ARCHIVE_TEST = """
def test_reads_the_archive(mednist_archive):
    print("ARCHIVE", mednist_archive)
    assert mednist_archive.is_file()
"""


@pytest.fixture
def sandbox(pytester, monkeypatch, tmp_path):
    """A pytester folder holding our conftest.py, with a private $CAPTIONING_HOME."""
    pytester.makeconftest(CONFTEST.read_text())
    for name in ("CAPTIONING_TEST_ARCHIVE", "CAPTIONING_MEDNIST_SOURCE", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CAPTIONING_REQUIRE_SYSTEM_TESTS", raising=False)
    monkeypatch.setenv("CAPTIONING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # faster; none is needed
    return pytester


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_archive(path: Path) -> Path:
    """A one-image ``.tar.gz`` in the MedNIST layout."""
    with tarfile.open(path, "w:gz") as tar:
        data = b"not really a jpeg"
        info = tarfile.TarInfo("MedNIST/Hand/000000.jpeg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_without_archive_or_network_real_data_tests_fail_in_one_line(sandbox, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/MedNIST.tar.gz"
    monkeypatch.setenv("CAPTIONING_MEDNIST_SOURCE", url)
    sandbox.makepyfile(ARCHIVE_TEST)
    result = sandbox.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # an error at setup: a failure, never a skip
    lines = [line for line in result.outlines if "CAPTIONING_TEST_ARCHIVE=" in line]
    assert lines, result.stdout.str()
    assert url in lines[0] and "to use a local copy, set" in lines[0]
    assert "another exception occurred" not in result.stdout.str()  # no chained traceback


def test_without_the_variable_the_archive_is_fetched_once_and_reused(sandbox, monkeypatch):
    source = tiny_archive(sandbox.path / "mirror.tar.gz")
    monkeypatch.setenv("CAPTIONING_MEDNIST_SOURCE", source.as_uri())
    sandbox.makepyfile(ARCHIVE_TEST)
    cached = Path(os.environ["CAPTIONING_HOME"]) / "downloads" / "mirror.tar.gz"
    sandbox.runpytest("-s", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert cached.read_bytes() == source.read_bytes()
    source.unlink()  # the mirror is gone: the cached copy serves the next session
    result = sandbox.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert f"ARCHIVE {cached}" in result.stdout.str()


def test_the_variable_wins_and_a_missing_file_fails(sandbox, monkeypatch):
    archive = tiny_archive(sandbox.path / "local.tar.gz")
    monkeypatch.setenv("CAPTIONING_MEDNIST_SOURCE", f"http://127.0.0.1:{closed_port()}/x.tar.gz")
    monkeypatch.setenv("CAPTIONING_TEST_ARCHIVE", str(archive))
    sandbox.makepyfile(ARCHIVE_TEST)
    sandbox.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("CAPTIONING_TEST_ARCHIVE", str(archive) + ".missing")
    result = sandbox.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CAPTIONING_TEST_ARCHIVE=*.missing: no such file*"])


SYSTEM_TEST = """
import pytest

@pytest.mark.needs_java
def test_java():
    pass

@pytest.mark.needs_chromium
def test_chromium():
    pass
"""


def test_system_program_markers_skip_or_fail_by_the_variable(sandbox, monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # neither program on PATH
    sandbox.makepyfile(SYSTEM_TEST)
    result = sandbox.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs a Java runtime (METEOR): none of java on PATH*"])

    monkeypatch.setenv("CAPTIONING_REQUIRE_SYSTEM_TESTS", "1")
    result = sandbox.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*needs Chromium*CAPTIONING_REQUIRE_SYSTEM_TESTS=1*"])

    java = bin_dir / "java"  # a program of that name on PATH satisfies the marker
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    result = sandbox.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
