"""``captioning serve``: a real uvicorn server on 127.0.0.1 serving the bundled model, asked over
HTTP with real MedNIST images (what it answers must equal ``caption_entries`` on the same
images), bad files, broken limits and a token; and the page, driven in Debian's Chromium by
Playwright (no browser download): a MedNIST image gets its caption, a colourful picture the
out-of-scope notice, a text file the error."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")  # the `test` extra installs it, with FastAPI and uvicorn
pytest.importorskip("fastapi")

from captioning.bundled import resolve_run  # noqa: E402
from captioning.captions.parse import parse_caption  # noqa: E402
from captioning.data.images import load_image, open_image  # noqa: E402
from captioning.entries import caption_entries  # noqa: E402
from captioning.inference import Captioner  # noqa: E402
from captioning.serving.app import create_app  # noqa: E402
from captioning.serving.server import DEFAULT_REQUEST_TIMEOUT, running  # noqa: E402
from captioning.serving.uploads import Limits  # noqa: E402
from captioning.utils.runs import read_json  # noqa: E402

LIMITS = Limits(max_files=4, max_file_mb=2)
NOT_AN_IMAGE = "not a PNG, JPEG or DICOM image"


def mednist_images(archive: Path, folder: Path, per_class: int) -> list[Path]:
    """The first ``per_class`` images of each class, copied out of the real archive."""
    files, seen = [], {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or seen.get(parts[-2], 0) >= per_class:
                continue
            seen[parts[-2]] = seen.get(parts[-2], 0) + 1
            files.append(folder / f"{parts[-2]}_{parts[-1]}")
            files[-1].write_bytes(tar.extractfile(member).read())
    return files


def colourful_picture() -> bytes:
    """A 256x256 RGB PNG of smooth colour ramps: no X-ray, CT or MRI looks like it."""
    y, x = np.mgrid[0:256, 0:256] / 255.0
    rgb = np.stack([x, y, (1 - x) * y], -1) * 255
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(*files: tuple[str, bytes]) -> list:
    return [("file", (name, data)) for name, data in files]


@pytest.fixture(scope="module")
def images(mednist_archive, tmp_path_factory) -> list[Path]:
    """12 real MedNIST images, two of each class."""
    return mednist_images(mednist_archive, tmp_path_factory.mktemp("mednist"), 2)


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    return Captioner(resolve_run(None))


@pytest.fixture(scope="module")
def server(captioner):
    """The bundled model served on a free port of 127.0.0.1 (4 files of 2 MB per request)."""
    with running(create_app(captioner, LIMITS)) as url:
        yield url


def expected(captioner, files: list[tuple[str, bytes]], **options) -> list[dict]:
    inputs = [(name, open_image(data, name=name)) for name, data in files]  # as uploads do
    return caption_entries(captioner, inputs, **options)


def test_a_refused_image_says_why_as_the_cli_does(server, captioner):
    # the picture in colour (refused for its colour) and in grey (refused by the run's rule)
    grey = io.BytesIO()
    Image.open(io.BytesIO(colourful_picture())).convert("L").save(grey, format="PNG")
    files = [("holiday.png", colourful_picture()), ("holiday_grey.png", grey.getvalue())]
    answer = httpx.post(f"{server}/caption", files=upload(*files), timeout=120)
    coloured, plain = answer.json()["results"]
    for result in (coloured, plain):
        assert result["in_scope"] is False and "caption" not in result
    assert coloured["out_of_scope_reason"].startswith("it is a colour image (")
    assert plain["out_of_scope_reason"].startswith("its ")
    assert [coloured, plain] == expected(captioner, files)


def test_captions_equal_the_cli_entries(server, captioner, images):
    files = [(p.name, p.read_bytes()) for p in images[::3]]  # 4 images, 4 classes
    answer = httpx.post(f"{server}/caption", files=upload(*files), timeout=120)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert results == expected(captioner, files)
    assert [r["class"] for r in results] == [p.name.split("_")[0] for p in images[::3]]
    for r in results:  # the findings each caption states, field by field of the run's set
        assert r["findings"] == parse_caption(r["caption"], captioner.tset).fields
        assert list(r["findings"]) == list(captioner.finding_fields) and captioner.finding_fields
        assert set(r["confidence"]) == {"class", *r["findings"]}
    assert any(v is not None for r in results for v in r["findings"].values())


def test_attention_maps_for_the_page(server, captioner, images):
    name, data = images[0].name, images[0].read_bytes()
    answer = httpx.post(f"{server}/caption?attention=1", files=upload((name, data)), timeout=120)
    assert answer.status_code == 200
    (entry,) = answer.json()["results"]
    (plain,) = expected(captioner, [(name, data)], attention=True)
    assert entry["caption"] == plain["caption"]
    attention = entry["attention"]
    assert attention["words"] == plain["attention"]["words"]
    maps = np.array(attention["maps"])  # (words, P)
    assert maps.shape == (len(attention["words"]), attention["grid"] ** 2)
    np.testing.assert_allclose(maps.sum(1), 1.0, atol=1e-2)  # one softmax per word
    png = base64.b64decode(entry["input_png"].split(",", 1)[1])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), load_image(data))


def test_bad_files_get_error_entries_beside_good_ones(server, images):
    files = [("notes.txt", b"not an image"), (images[1].name, images[1].read_bytes())]
    answer = httpx.post(f"{server}/caption", files=upload(*files, ("empty.png", b"")))
    assert answer.status_code == 200
    bad, good, empty = answer.json()["results"]
    assert bad == {"path": "notes.txt", "error": NOT_AN_IMAGE}
    assert empty == {"path": "empty.png", "error": "empty file (0 bytes)"}
    assert good["caption"] and good["class"] == images[1].name.split("_")[0]


@pytest.mark.parametrize(
    ("files", "status", "line"),
    [
        ([("notes.txt", b"hello")], 422, f"notes.txt: {NOT_AN_IMAGE}"),
        (
            [("a.txt", b"x"), ("b.png", b"")],
            422,
            f"no file could be captioned: a.txt: {NOT_AN_IMAGE}; b.png: empty file (0 bytes)",
        ),
        ([("big.png", b"\x89PNG" + bytes(3 << 20))], 422, "big.png: file too large (3.0 MB;"),
        ([("x.png", b"1")] * 5, 413, "too many files (the limit is 4)"),
        ([("huge.png", bytes(9 << 20))], 413, "request too large"),
    ],
    ids=["not-an-image", "all-bad", "file-too-large", "too-many-files", "request-too-large"],
)
def test_refused_requests_say_why_and_the_server_goes_on(server, images, files, status, line):
    answer = httpx.post(f"{server}/caption", files=upload(*files), timeout=60)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(line)
    good = (images[2].name, images[2].read_bytes())
    assert httpx.post(f"{server}/caption", files=upload(good), timeout=60).status_code == 200


def hostile():
    """benchmarks/hostile_files.py: the hostile uploads and clients of serve_load.py."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_files.py"
    spec = importlib.util.spec_from_file_location("hostile_files", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hostile_files_get_one_line_each_and_the_server_goes_on(server, images):
    for name, data in hostile().hostile_files(images[0].read_bytes()).items():
        answer = httpx.post(f"{server}/caption", files=upload((name, data)), timeout=60)
        assert answer.status_code == 422, name
        line = answer.json()["error"]
        assert line.startswith(f"{name}: ") and "\n" not in line, line
    good = (images[2].name, images[2].read_bytes())
    assert httpx.post(f"{server}/caption", files=upload(good), timeout=60).status_code == 200


def test_requests_without_files_are_refused(server):
    assert httpx.post(f"{server}/caption", content=b"raw").status_code == 415
    other = httpx.post(f"{server}/caption", files=[("image", ("a.png", b"1"))])
    assert other.status_code == 400 and "named 'file'" in other.json()["error"]


def test_no_upload_touches_a_temporary_file(server, images, monkeypatch):
    # Starlette spools a form part over 1 MB to a temporary file; the service must not.
    made = []
    real = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: made.append(1) or real(*a, **k))
    padded = images[3].read_bytes() + bytes(3 << 19)  # 1.5 MB: a JPEG with trailing bytes
    answer = httpx.post(f"{server}/caption", files=upload(("padded.jpeg", padded)), timeout=60)
    assert answer.status_code == 200 and answer.json()["results"][0]["caption"]
    assert made == []


def test_health_names_the_model_and_stores_nothing(server):
    health = httpx.get(f"{server}/health").json()
    run = read_json(resolve_run(None) / "run.json")
    card = read_json(resolve_run(None).parent / "model_card.json")
    assert health["status"] == "ready" and health["stores_uploads"] is False
    assert health["model"]["bundled"] is True
    assert health["model"]["commit"] == run["code"]["commit"]
    assert health["model"]["manifest_sha256"] == run["manifest_sha256"]
    assert health["model"]["model_card"]["test"] == card["test"]
    assert health["limits"] == {"max_files": 4, "max_upload_mb": 2}
    assert health["token_required"] is False


def test_the_page_is_served_and_says_nothing_is_stored(server):
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "never stored" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{server}/page.js").status_code == 200


def test_a_token_guards_captions(captioner, images):
    good = upload((images[0].name, images[0].read_bytes()))
    with running(create_app(captioner, LIMITS, token="s3cret")) as url:
        assert httpx.get(f"{url}/health").json()["token_required"] is True
        assert httpx.post(f"{url}/caption", files=good).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{url}/caption", files=good, headers=wrong).status_code == 401
        same_length = {"Authorization": "Bearer s3creT"}  # differs in the last character only
        assert httpx.post(f"{url}/caption", files=good, headers=same_length).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        answer = httpx.post(f"{url}/caption", files=good, headers=right, timeout=60)
        assert answer.status_code == 200 and answer.json()["results"][0]["caption"]


def test_cors_is_off_unless_origins_are_named(server, captioner):
    page = "https://viewer.example.org"
    asked = {"Origin": page}
    assert "access-control-allow-origin" not in httpx.get(f"{server}/health", headers=asked).headers
    with running(create_app(captioner, LIMITS, cors_origins=(page,))) as url:
        named = httpx.get(f"{url}/health", headers=asked)
        assert named.headers["access-control-allow-origin"] == page
        other = httpx.get(f"{url}/health", headers={"Origin": "https://elsewhere.example.com"})
        assert "access-control-allow-origin" not in other.headers
        preflight = {**asked, "Access-Control-Request-Method": "POST"}
        preflight["Access-Control-Request-Headers"] = "authorization"
        allowed = httpx.options(f"{url}/caption", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == page
        assert set(allowed.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()


def test_slow_clients_are_cut_off(captioner, images):
    assert DEFAULT_REQUEST_TIMEOUT <= 30  # a 1 byte/s client is gone within 30 s by default
    trickle = hostile().trickle
    request, body_at = hostile().multipart_request(images[0].name, images[0].read_bytes())
    with running(create_app(captioner, LIMITS), request_timeout=2) as url:
        cases = {"silent": None, "slow headers": 0, "slow upload": body_at}
        for case, at_once in cases.items():
            if at_once is None:
                answer, seconds = trickle(url, b"", None)
            else:
                answer, seconds = trickle(url, request, at_once)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), case
            assert b'"request not received within 2s"' in answer, case
            assert 1.9 < seconds < 5, (case, seconds)
        answer, _ = trickle(url, request, len(request))  # all at once: captioned
        assert answer.startswith(b"HTTP/1.1 200") and b'"caption"' in answer
        with httpx.Client(base_url=url) as client:  # one connection, idle between requests
            for _ in range(3):
                assert client.get("/health").status_code == 200
                time.sleep(1.2)  # 3.6 s in all: the deadline is per request, not per connection


def test_serve_warns_when_bound_beyond_loopback(tmp_path):
    env = {**os.environ, "CAPTIONING_SERVE_TOKEN": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "captioning.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = process.stderr.readline()
    finally:
        process.kill()
        process.wait()
    assert first.startswith("warning: serving on 0.0.0.0, reachable from other machines")
    assert "--token" in first


@contextmanager
def browser_page(url: str):
    """A page of Debian's Chromium (driven by Playwright, no browser download) open at url."""
    sync_api = pytest.importorskip("playwright.sync_api")
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    chromium = next(filter(None, map(shutil.which, names)))  # needs_chromium: one is there
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.mark.needs_chromium
def test_the_page_in_a_real_browser(server, captioner, images, tmp_path):
    picture = tmp_path / "holiday.png"
    picture.write_bytes(colourful_picture())
    (scope,) = expected(captioner, [(picture.name, picture.read_bytes())])
    assert scope["in_scope"] is False  # the premise: the bundled model refuses it
    xray = images[4]
    (want,) = expected(captioner, [(xray.name, xray.read_bytes())])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with browser_page(server) as page:
        page.set_input_files("#file", str(xray))
        card = page.locator(".result[data-state=captioned]")
        card.wait_for(timeout=60_000)
        page.locator(".result canvas[data-ready]").wait_for()  # the image is drawn
        assert card.locator(".caption").inner_text() == want["caption"]
        table = card.locator("table").inner_text()
        assert want["class"] in table
        for name, value in want["findings"].items():  # beside the caption, with its confidence
            assert f"{name}: {value or 'not stated'}" in table
        before = page.evaluate("document.querySelector('canvas').toDataURL()")
        card.locator(".word").nth(2).hover()  # the overlay of that word is drawn
        assert page.evaluate("document.querySelector('canvas').toDataURL()") != before
        page.screenshot(path=str(tmp_path / "captioned.png"), full_page=True)

        page.set_input_files("#file", str(picture))
        notice = page.locator(".result[data-state=out-of-scope] .out-of-scope")
        notice.wait_for(timeout=60_000)
        assert "Out of scope" in notice.inner_text()
        assert scope["out_of_scope_reason"] in notice.inner_text()  # the CLI's one line
        assert page.locator(".result .caption").count() == 0

        page.set_input_files("#file", str(text))
        error = page.locator(".result[data-state=error]")
        error.wait_for(timeout=60_000)
        assert NOT_AN_IMAGE in error.inner_text()
        assert NOT_AN_IMAGE in page.locator("#error").inner_text()
        page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    assert (tmp_path / "captioned.png").stat().st_size > 10_000


@pytest.mark.needs_chromium
def test_the_page_asks_for_the_token(captioner, images):
    with running(create_app(captioner, LIMITS, token="s3cret")) as url, browser_page(url) as page:
        page.locator("#token").wait_for()  # shown: /health says a token is required
        page.fill("#token", "wrong")
        page.set_input_files("#file", str(images[5]))
        page.locator("#error", has_text="missing or wrong API token").wait_for(timeout=60_000)
        page.fill("#token", "s3cret")
        page.set_input_files("#file", str(images[5]))
        page.locator(".result[data-state=captioned] .caption").wait_for(timeout=60_000)
        assert page.locator("#error").is_hidden()
