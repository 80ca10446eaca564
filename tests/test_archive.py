"""Archives and downloads: safe extraction, md5 checks, resumable downloads, class roots."""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.server
import io
import tarfile
import threading
import time
from pathlib import Path

import pytest

from captioning.data import archive
from captioning.errors import DataError

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"


def add_file(tar: tarfile.TarFile, name: str, data: bytes = JPEG) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def make_archive(path: Path, build) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "MedNIST/Hand/000000.jpeg")
        build(tar)
        add_file(tar, "MedNIST/Hand/000001.jpeg")
    return path


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# --- safe extraction ------------------------------------------------------------------------

UNSAFE = {
    "dotdot": (lambda t: add_file(t, "../x"), "../x", "'..'"),
    "dotdot_inside": (lambda t: add_file(t, "MedNIST/../../x"), "MedNIST/../../x", "'..'"),
    "absolute": (lambda t: add_file(t, "/tmp/captioning-absolute-x"), "/tmp/", "absolute"),
    "symlink": (
        lambda t: add_special(t, "MedNIST/Hand/link.jpeg", tarfile.SYMTYPE, "/etc/passwd"),
        "MedNIST/Hand/link.jpeg",
        "link",
    ),
    "hardlink": (
        lambda t: add_special(
            t, "MedNIST/Hand/hard.jpeg", tarfile.LNKTYPE, "MedNIST/Hand/000000.jpeg"
        ),
        "MedNIST/Hand/hard.jpeg",
        "link",
    ),
    "fifo": (lambda t: add_special(t, "MedNIST/Hand/pipe", tarfile.FIFOTYPE), "pipe", "fifo"),
    "chardev": (
        lambda t: add_special(t, "MedNIST/null", tarfile.CHRTYPE),
        "MedNIST/null",
        "device",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_member_is_refused(tmp_path, case):
    build, member, problem = UNSAFE[case]
    tar_path = make_archive(tmp_path / f"{case}.tar.gz", build)
    sandbox = tmp_path / "sandbox"
    target = sandbox / "out"
    sandbox.mkdir()
    with pytest.raises(DataError) as info:
        archive.extract(tar_path, target)
    message = str(info.value)
    assert str(tar_path) in message and member in message and problem in message.lower()
    assert "\n" not in message
    # nothing beside the target, nothing outside the sandbox, no link or special file inside
    assert {p.name for p in sandbox.iterdir()} == {"out"}
    assert not (tmp_path / "x").exists()
    assert not Path("/tmp/captioning-absolute-x").exists()
    for path in target.rglob("*"):
        assert path.is_dir() or (path.is_file() and not path.is_symlink())
    assert "MedNIST/Hand/000001.jpeg" not in listing(target)  # stopped at the bad member


def test_safe_archive_extracts_every_file(tmp_path):
    tar_path = make_archive(tmp_path / "ok.tar.gz", lambda t: add_file(t, "MedNIST/CXR/a.png"))
    assert archive.extract(tar_path, tmp_path / "out") == 3
    assert listing(tmp_path / "out") >= {
        "MedNIST/Hand/000000.jpeg",
        "MedNIST/Hand/000001.jpeg",
        "MedNIST/CXR/a.png",
    }
    assert (tmp_path / "out/MedNIST/CXR/a.png").read_bytes() == JPEG


def test_per_class_limit_keeps_the_first_files_of_each_folder(tmp_path):
    def build(tar):
        for i in range(5):
            add_file(tar, f"MedNIST/CXR/{i}.jpeg")

    tar_path = make_archive(tmp_path / "many.tar.gz", build)
    archive.extract(tar_path, tmp_path / "out", per_class_limit=2)
    files = {p for p in listing(tmp_path / "out") if p.endswith(".jpeg")}
    assert files == {
        "MedNIST/Hand/000000.jpeg",
        "MedNIST/Hand/000001.jpeg",
        "MedNIST/CXR/0.jpeg",
        "MedNIST/CXR/1.jpeg",
    }


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.7])
def test_truncated_archive_is_refused(tmp_path, keep):
    def build(tar):
        for i in range(30):  # incompressible content, so truncation lands inside members
            add_file(tar, f"MedNIST/CXR/{i}.jpeg", hashlib.sha512(str(i).encode()).digest() * 64)

    full = make_archive(tmp_path / "full.tar.gz", build).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(DataError, match=r"corrupt or truncated") as info:
        archive.extract(cut, tmp_path / "out")
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


def test_empty_archive_is_refused(tmp_path):
    path = tmp_path / "empty.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    with pytest.raises(DataError, match="no files"):
        archive.extract(path, tmp_path / "out")


# --- md5 ------------------------------------------------------------------------------------


def test_md5_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert archive.md5_file(path, chunk=1000) == hashlib.md5(b"x" * 3_000_000).hexdigest()


def test_md5_mismatch_names_the_archive_and_both_values(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(b"abc")
    actual = hashlib.md5(b"abc").hexdigest()
    assert archive.verify_md5(path, actual.upper()) == actual  # hex case does not matter
    assert archive.verify_md5(path, None) == actual
    with pytest.raises(DataError) as info:
        archive.verify_md5(path, "0" * 32)
    assert (
        str(path) in str(info.value) and actual in str(info.value) and "0" * 32 in str(info.value)
    )


def test_sidecar_md5(tmp_path):
    path = tmp_path / "MedNIST.tar.gz"
    path.write_bytes(b"abc")
    assert archive.sidecar_md5(path) is None
    (tmp_path / "MedNIST.tar.gz.md5").write_text("ABCDEF0123  MedNIST.tar.gz\n")
    assert archive.sidecar_md5(path) == "abcdef0123"
    (tmp_path / "MedNIST.tar.gz.md5").write_text("")
    assert archive.sidecar_md5(path) is None


# --- download -------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 4000  # about 1 MB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Server:
    """A tiny HTTP server on 127.0.0.1 that honours (or ignores) Range and can cut transfers."""

    def __init__(self):
        self.ranges: list[str | None] = []
        self.honour_range = True
        self.cut_at: int | None = None  # send only this many bytes of the body, then hang up
        self.delay = 0.0  # seconds to wait before sending the body
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = 0
                if header and server.honour_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/*")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_at is not None:
                    body = body[: server.cut_at]
                    self.close_connection = True
                time.sleep(server.delay)
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/MedNIST.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


def test_download_from_a_file_url(tmp_path):
    source = tmp_path / "mirror" / "MedNIST.tar.gz"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "downloads" / "MedNIST.tar.gz"
    assert archive.download(source.as_uri(), dest, PAYLOAD_MD5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("MedNIST.tar.gz.part").exists()


def test_download_of_a_missing_file_url_is_one_clear_error(tmp_path):
    url = (tmp_path / "absent.tar.gz").as_uri()
    with pytest.raises(DataError, match="download failed") as info:
        archive.download(url, tmp_path / "d" / "absent.tar.gz", None)
    assert url in str(info.value)


def test_download_over_http(tmp_path, server):
    dest = tmp_path / "MedNIST.tar.gz"
    archive.download(server.url, dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [None]
    archive.download(server.url, dest, PAYLOAD_MD5)  # already there with the right md5
    assert server.ranges == [None]


def test_download_resumes_a_partial_file(tmp_path, server):
    dest = tmp_path / "MedNIST.tar.gz"
    dest.with_name("MedNIST.tar.gz.part").write_bytes(PAYLOAD[:1000])
    archive.download(server.url, dest, PAYLOAD_MD5)
    assert server.ranges == ["bytes=1000-"]
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("MedNIST.tar.gz.part").exists()


def test_download_restarts_when_the_server_ignores_range(tmp_path, server):
    server.honour_range = False
    dest = tmp_path / "MedNIST.tar.gz"
    dest.with_name("MedNIST.tar.gz.part").write_bytes(b"stale bytes")
    archive.download(server.url, dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_md5_deletes_the_partial_file(tmp_path, server):
    dest = tmp_path / "MedNIST.tar.gz"
    with pytest.raises(DataError, match="md5") as info:
        archive.download(server.url, dest, "0" * 32)
    assert server.url in str(info.value)
    assert not dest.exists() and not dest.with_name("MedNIST.tar.gz.part").exists()
    archive.download(server.url, dest, PAYLOAD_MD5)  # the next attempt starts clean
    assert dest.read_bytes() == PAYLOAD


def test_downloads_of_one_file_at_once_take_turns(tmp_path, server):
    # two fetches of one file overlap (two commands, two test workers): one transfer, and the
    # second finds the finished file rather than appending to the first one's partial file
    server.delay = 0.5
    dest = tmp_path / "MedNIST.tar.gz"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: archive.download(server.url, dest, PAYLOAD_MD5), range(2)))
    assert done == [dest, dest] and dest.read_bytes() == PAYLOAD
    assert server.ranges == [None]


@pytest.mark.parametrize("md5", [PAYLOAD_MD5, None])
def test_interrupted_download_is_kept_and_resumed(tmp_path, server, md5):
    dest = tmp_path / "MedNIST.tar.gz"
    part = dest.with_name("MedNIST.tar.gz.part")
    server.cut_at = 300_000
    with pytest.raises(DataError, match="incomplete") as info:
        archive.download(server.url, dest, md5)
    assert "rerun" in str(info.value)
    assert not dest.exists()  # a short file is never taken for the archive
    assert part.read_bytes() == PAYLOAD[:300_000]
    server.cut_at = None
    archive.download(server.url, dest, md5)
    assert server.ranges[-1] == "bytes=300000-"
    assert dest.read_bytes() == PAYLOAD


def test_complete_partial_file_is_finished_without_downloading(tmp_path, server):
    # killed after the last byte but before the rename: the server answers 416 to the resume
    dest = tmp_path / "MedNIST.tar.gz"
    dest.with_name("MedNIST.tar.gz.part").write_bytes(PAYLOAD)
    archive.download(server.url, dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD


# --- class root -----------------------------------------------------------------------------


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG)


def test_class_root_with_a_wrapper_folder(tmp_path):
    touch(tmp_path / "MedNIST/Hand/1.jpeg")
    touch(tmp_path / "MedNIST/CXR/1.jpeg")
    assert archive.find_class_root(tmp_path) == tmp_path / "MedNIST"


def test_class_root_without_a_wrapper_folder(tmp_path):
    touch(tmp_path / "Hand/1.jpeg")
    touch(tmp_path / "CXR/1.jpeg")
    (tmp_path / ".hidden").mkdir()
    assert archive.find_class_root(tmp_path) == tmp_path


def test_class_root_with_a_single_class(tmp_path):
    touch(tmp_path / "Hand/1.jpeg")
    assert archive.find_class_root(tmp_path) == tmp_path


def test_class_root_with_a_single_class_in_a_wrapper(tmp_path):
    touch(tmp_path / "MedNIST/Hand/1.jpeg")
    assert archive.find_class_root(tmp_path) == tmp_path / "MedNIST"


def test_folder_without_class_folders_is_refused(tmp_path):
    touch(tmp_path / "1.jpeg")
    with pytest.raises(DataError, match="no class folders") as info:
        archive.find_class_root(tmp_path)
    assert str(tmp_path) in str(info.value)
