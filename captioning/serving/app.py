"""``captioning serve [--run RUN]``: captions over HTTP, and a page for people, on one model.

Endpoints (FastAPI on uvicorn, the optional ``[serve]`` extra):

- ``POST /caption`` (``?attention=1`` for the page): one or more images, each a multipart
  form part named ``file``. 200: ``{"results": [entry, ...]}`` with the entries of
  ``captioning caption --json``, in order; a file that cannot be captioned gets an
  ``{"path", "error"}`` entry. 4xx: ``{"error": one line}`` (and ``results`` when files were
  read) when none can be captioned, the request breaks the limits or lacks the token.
- ``GET /health``: readiness, the model's identity, the limits, ``stores_uploads: false``.
- ``GET /``: the page (``captioning/web``; plain HTML and JavaScript, nothing fetched from
  elsewhere).

Uploads are decoded from memory and never stored (``captioning.serving.uploads``). The model is
loaded once; one worker thread captions what concurrent requests queue
(``captioning.serving.batching``). A request must arrive within a deadline, or its client is
cut off (``captioning.serving.server``). Browsers' cross-origin calls (CORS) are refused unless
origins are named.
"""

import asyncio
import base64
import hmac
import io
import math
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import Decoded
from captioning.entries import caption_entries
from captioning.errors import CaptioningError
from captioning.inference import Captioner
from captioning.serving.batching import Batcher
from captioning.serving.server import DEFAULT_REQUEST_TIMEOUT, server_config
from captioning.serving.uploads import Limits, Refused, decode_files, read_files, refusal_line
from captioning.utils.runs import read_json

TOKEN_ENV = "CAPTIONING_SERVE_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE_FILES = {  # URL path -> (file in captioning/web, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'"


def model_identity(captioner: Captioner) -> dict:
    """What ``/health`` says about the model: run, commit, data manifest, decoding, and the
    model card's facts when it is the bundled model."""
    from captioning.bundled import bundled_dir

    run = captioner.run
    bundled = captioner.run_dir.resolve() == (bundled_dir() / "captioner").resolve()
    identity = {
        "run": captioner.run_dir.name,
        "bundled": bundled,
        "command": run.get("command"),
        "commit": (run.get("code") or {}).get("commit"),
        "manifest_sha256": run.get("manifest_sha256"),
        "decoder": run.get("decoder"),
        "classes": captioner.classes,
        "templates": captioner.templates,
        "beam_width": captioner.beam_width,
        "attention": captioner.has_attention,
        "out_of_scope_check": captioner.scope is not None,
        "calibrated": captioner.calibration is not None,
    }
    card = bundled_dir() / "model_card.json"
    if bundled and card.is_file():
        facts = read_json(card)
        identity["model_card"] = {k: facts[k] for k in ("name", "data", "test") if k in facts}
    return identity


def png_data_url(image: np.ndarray) -> str:
    """The (S, S) or (S, S, 3) uint8 image the model read, as a PNG data URL for the page."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def for_json(entry: dict, image, attention: bool) -> dict:
    """An entry ready for JSON: attention maps (L, P) as lists cut to the caption's words,
    with their grid side S (P = S * S), and the model's input image when asked."""
    maps = entry.pop("attention", None)
    if maps is not None:
        words = list(maps["words"])
        grid = np.round(maps["maps"][: len(words)], 4)  # (words, P)
        entry["attention"] = {
            "words": words,
            "grid": math.isqrt(grid.shape[-1]),
            "maps": grid.tolist(),
        }
    if attention and isinstance(image, Decoded):
        entry["input_png"] = png_data_url(image.pixels)
    return entry


def create_app(
    run: str | Path | Captioner,
    limits: Limits | None = None,
    token: str | None = None,
    max_batch: int = 32,
    cors_origins: tuple[str, ...] = (),
):
    """The FastAPI app serving ``run`` (a captioner run folder, or a loaded ``Captioner``).
    Loads and warms up the model now, so a server that answers is ready. ``token``: required
    as ``Authorization: Bearer TOKEN`` on ``POST /caption`` when given. ``cors_origins``: the
    only web origins whose pages may call the service from a browser (none by default)."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    limits = limits or Limits()
    captioner = warmed_up(run if isinstance(run, Captioner) else Captioner(run))
    batcher = Batcher(
        lambda inputs, attention: caption_entries(captioner, inputs, attention=attention),
        max_batch=max_batch,
    )

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(title="captioning", lifespan=lifespan, docs_url=None, redoc_url=None)
    if cors_origins:  # off unless named: other sites' pages must not use the service
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )
    add_caption_route(app, batcher, limits, token, captioner.image_spec)
    health = health_report(captioner, limits, token)

    @app.get("/health")
    async def get_health():
        return health

    add_page_routes(app)
    return app


def warmed_up(captioner: Captioner) -> Captioner:
    """``captioner`` after captioning a blank image with and without attention: both searches
    are traced before the first request."""
    blank = [("warm-up", np.zeros(captioner.image_spec.cache_shape, np.uint8))]
    for attention in (False, True):
        caption_entries(captioner, blank, attention=attention)
    return captioner


def health_report(captioner: Captioner, limits: Limits, token: str | None) -> dict:
    """What ``GET /health`` answers: readiness, the model's identity and the limits."""
    return {
        "status": "ready",
        "model": model_identity(captioner),
        "limits": {"max_files": limits.max_files, "max_upload_mb": limits.max_file_mb},
        "token_required": bool(token),
        "stores_uploads": False,
        "note": "uploaded images are decoded in memory, captioned and discarded; none is stored",
    }


def refusal(status: int, line: str, results: list | None = None):
    """A 4xx/5xx JSON answer: ``{"error": line}``, with ``results`` when files were read."""
    from fastapi.responses import JSONResponse

    body = {"error": line} if results is None else {"error": line, "results": results}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def authorised(headers, token: str | None) -> bool:
    """Whether a request with these headers may caption: always without a ``token``, else
    only with ``Authorization: Bearer TOKEN`` (compared in constant time)."""
    if not token:
        return True
    sent = headers.get("authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def add_caption_route(
    app, batcher: Batcher, limits: Limits, token: str | None, spec: ImageSpec = DEFAULT_IMAGE
) -> None:
    """``POST /caption``: check the token, read and decode the files within ``limits`` (to
    the run's ``spec``), queue
    them on ``batcher`` and answer their entries (see the module doc)."""
    from fastapi import Request
    from starlette.concurrency import run_in_threadpool

    @app.post("/caption")
    async def caption(request: Request, attention: bool = False):
        if not authorised(request.headers, token):
            return refusal(401, "missing or wrong API token (send 'Authorization: Bearer TOKEN')")
        try:
            files = await read_files(request, limits)
        except Refused as refused:
            return refusal(refused.status, refused.line)
        inputs = await run_in_threadpool(decode_files, files, limits, spec)
        line = refusal_line(inputs)
        if line is not None:
            return refusal(422, line, [{"path": name, "error": p} for name, p in inputs])
        try:
            entries = await asyncio.wrap_future(batcher.submit(inputs, attention))
        except Exception as err:  # the worker survives; this request fails with one line
            return refusal(500, f"captioning failed: {type(err).__name__}: {err}")
        return {
            "results": [
                for_json(e, image, attention) for e, (_, image) in zip(entries, inputs, strict=True)
            ]
        }


def add_page_routes(app) -> None:
    """``GET`` of each of ``PAGE_FILES``, read once from ``captioning/web``, served with
    ``PAGE_POLICY`` as its Content-Security-Policy."""
    from fastapi.responses import Response

    from captioning.utils.resources import package_folder

    web = package_folder("web")
    headers = {"Content-Security-Policy": PAGE_POLICY}

    def page_of(body: bytes, kind: str):
        async def page():
            return Response(body, media_type=kind, headers=headers)

        return page

    for path, (name, kind) in PAGE_FILES.items():
        app.get(path, include_in_schema=False)(page_of((web / name).read_bytes(), kind))


def serve(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: tuple[str, ...] = (),
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> int:
    """The ``captioning serve`` command: load the model, then serve until interrupted."""
    try:
        import uvicorn
        from starlette import formparsers  # comes with FastAPI

        if formparsers.multipart is None:
            raise ImportError(name="python-multipart")
    except ImportError as err:
        raise CaptioningError(
            f"captioning serve needs FastAPI, uvicorn and python-multipart ({err.name} is "
            "missing): pip install 'captioning[serve]'"
        ) from None
    if host not in LOOPBACK:  # said before the model loads, so it is seen at once
        guard = "" if token else f"; anyone who reaches it may use it (set --token or ${TOKEN_ENV})"
        print(f"warning: serving on {host}, reachable from other machines{guard}", file=sys.stderr)
    app = create_app(run_dir, limits, token, cors_origins=cors_origins)
    config = server_config(app, request_timeout, host=host, port=port, log_level="info")
    print(
        f"serving {run_dir} at http://{host}:{port}/ (uploads are not stored; Ctrl-C stops)",
        file=sys.stderr,
    )
    uvicorn.Server(config).run()
    return 0
