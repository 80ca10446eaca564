"""Images uploaded to ``captioning serve``: read from the request in memory, within limits,
and decoded by the same rules as ``captioning caption`` files.

Nothing is written to disk: Starlette's form parser would spool a file part over 1 MB to a
temporary file, so the parser here keeps every part in memory (the request as a whole is capped
first, so memory stays bounded by the limits). A file that cannot be captioned becomes the same
one-line problem that the CLI prints (``not a PNG, JPEG or DICOM image``, ``empty file (0
bytes)``, ``image too large ...``), plus ``file too large`` for an upload over the size limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import ImageError, open_image

FIELD = "file"  # the multipart part name of each image
FORM_SLACK = 64 * 1024  # headers and boundaries of the multipart form around the files
MAX_NAME = 200  # characters of an uploaded file name kept in the entries
DEFAULT_MAX_FILES = 16  # files per request (``serve --max-files``)
DEFAULT_MAX_FILE_MB = 10.0  # megabytes per file (``serve --max-upload-mb``)


class Refused(Exception):
    """A request refused as a whole: an HTTP status and one line saying why."""

    def __init__(self, status: int, line: str):
        super().__init__(line)
        self.status = status
        self.line = line


@dataclass(frozen=True)
class Limits:
    """How much one request may carry: files per request and bytes per file."""

    max_files: int = DEFAULT_MAX_FILES
    max_file_mb: float = DEFAULT_MAX_FILE_MB

    def __post_init__(self):
        if self.max_files < 1 or self.max_file_mb <= 0:
            raise ValueError("--max-files must be >= 1 and --max-upload-mb > 0")

    @property
    def file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def request_bytes(self) -> int:
        return self.max_files * self.file_bytes + FORM_SLACK


async def read_files(request, limits: Limits) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each part named ``file``, in order. Raises ``Refused`` for a
    request that is not a multipart form, is larger than the limits allow, holds too many
    files or none."""
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.requests import ClientDisconnect

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refused(415, f"send the images as a multipart form, one part named '{FIELD}' each")
    each = f"{limits.max_file_mb:g} MB"
    too_large = Refused(413, f"request too large (the limit is {limits.max_files} files of {each})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.request_bytes:
        raise too_large

    async def capped():
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limits.request_bytes:
                raise too_large
            yield chunk

    parser = MultiPartParser(request.headers, capped(), max_files=limits.max_files, max_fields=16)
    parser.spool_max_size = limits.request_bytes + 1  # never rolls over to a temporary file
    try:
        form = await parser.parse()
    except MultiPartException as err:
        if str(err).startswith("Too many files"):
            raise Refused(413, f"too many files (the limit is {limits.max_files})") from None
        raise Refused(400, f"malformed multipart form ({err})") from None
    except ClientDisconnect:  # gone, or cut off by the request deadline: nobody hears this
        raise Refused(408, "the client left before the upload arrived") from None
    files = []
    for key, value in form.multi_items():
        if key == FIELD and not isinstance(value, str):
            files.append(((value.filename or "upload")[:MAX_NAME], await value.read()))
            await value.close()
    if not files:
        raise Refused(400, f"no image in the request: send each one as a form part named '{FIELD}'")
    return files


def decode_files(
    files: list[tuple[str, bytes]], limits: Limits, spec: ImageSpec = DEFAULT_IMAGE
) -> list[tuple[str, object]]:
    """(name, decoded file (``open_image``: pixels of ``spec``, the run's, and colour) or
    the one-line problem) per uploaded file: the
    ``inputs`` that ``captioning.entries.caption_entries`` takes."""
    inputs: list[tuple[str, object]] = []
    for name, data in files:
        if len(data) > limits.file_bytes:
            size = len(data) / 1024 / 1024
            inputs.append(
                (name, f"file too large ({size:.1f} MB; the limit is {limits.max_file_mb:g} MB)")
            )
            continue
        try:
            inputs.append((name, open_image(data, name=name, spec=spec)))
        except ImageError as err:
            inputs.append((name, err.problem))
    return inputs


def refusal_line(inputs: list[tuple[str, object]]) -> str | None:
    """One line when no input could be decoded (the request gets a 4xx), else None."""
    problems = [(n, p) for n, p in inputs if isinstance(p, str)]
    if len(problems) < len(inputs):
        return None
    if len(problems) == 1:
        return f"{problems[0][0]}: {problems[0][1]}"
    return "no file could be captioned: " + "; ".join(f"{n}: {p}" for n, p in problems)
