"""Hostile uploads for ``benchmarks/serve_load.py``: files a careless or malicious client sends
instead of an image. Each must get a 4xx with one line, never a 5xx, and must not grow the
server's memory. Built in memory, each well under 1 MB:

- ``empty.png``: 0 bytes;
- ``truncated.png`` / ``truncated.jpeg``: the first half of a real PNG / JPEG;
- ``bomb.png``: a valid PNG of 30,000 x 30,000 black pixels, zlib-compressed to about 100 kB
  (900 MB once decoded as 8-bit grey);
- ``huge_header.png``: the start of a PNG declaring 20,000 x 20,000 pixels: its signature,
  header and first row of data, then nothing;
- ``text.png``: a text file renamed ``.png``;
- ``no_pixels.dcm``: a DICOM file with patient and study attributes and no pixel data.

And a slow client (``trickle``): a raw request sent 1 byte per second, which the server must
cut off within its request deadline (``captioning serve --request-timeout``).
"""

from __future__ import annotations

import io
import socket
import struct
import time
import zlib


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, bit_depth: int = 1) -> bytes:
    """The PNG signature and IHDR of a greyscale image of ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


def bomb_png(side: int = 30_000) -> bytes:
    """A complete, valid 1-bit PNG of ``side`` x ``side`` zeros, compressed row by row."""
    row = bytes(1 + -(-side // 8))  # filter byte 0, then side bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return png_header(side, side) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def dicom_without_pixels() -> bytes:
    """A DICOM Part 10 file (secondary capture) whose dataset has no Pixel Data element."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "Test^Hostile", "0", "OT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def real_png(jpeg: bytes) -> bytes:
    """``jpeg`` (a real image) re-encoded as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, format="PNG")
    return buffer.getvalue()


def hostile_files(jpeg: bytes) -> dict[str, bytes]:
    """Kind -> file bytes (the kind is also the upload's file name); ``jpeg``: a real image to
    truncate."""
    png = real_png(jpeg)
    return {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpeg": jpeg[: len(jpeg) // 2],
        "bomb.png": bomb_png(),
        "huge_header.png": png_header(20_000, 20_000, 8)
        + png_chunk(b"IDAT", zlib.compress(bytes(20_001))),
        "text.png": b"patient notes: not an image at all\n" * 20,
        "no_pixels.dcm": dicom_without_pixels(),
    }


def trickle(url: str, request: bytes, at_once: int, limit: float = 60) -> tuple[bytes, float]:
    """Connect to ``url``, send ``request[:at_once]``, then the rest 1 byte per second (nothing
    when ``at_once`` is None), until the server answers and closes: (its answer, seconds from
    connecting to the close)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    answer, start = b"", time.monotonic()
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(1.0)
        sent = len(request) if at_once is None else at_once
        try:
            sock.sendall(request[:sent])
            while time.monotonic() - start < limit:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:  # a second has passed: one more byte
                    if sent < len(request) and at_once is not None:
                        sock.sendall(request[sent : sent + 1])
                        sent += 1
                    continue
                if not chunk:  # closed by the server
                    break
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
    return answer, time.monotonic() - start


def multipart_request(name: str, data: bytes) -> tuple[bytes, int]:
    """A raw ``POST /caption`` of one file: (the bytes, where the body starts)."""
    boundary = b"x7b1e"
    body = b"".join(
        [
            b"--" + boundary + b"\r\n",
            b'content-disposition: form-data; name="file"; filename="' + name.encode() + b'"\r\n',
            b"content-type: application/octet-stream\r\n\r\n",
            data,
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    head = (
        b"POST /caption HTTP/1.1\r\nhost: localhost\r\n"
        b"content-type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body, len(head)
