"""Write ``docs/serve_page.png``, the README's picture of the ``captioning serve`` page:

    python docs/serve_page.py [--archive MedNIST.tar.gz] [--out docs/serve_page.png]

Serves the bundled model on 127.0.0.1, opens the page in Chromium (Playwright, no browser
download), uploads a real MedNIST hand X-ray and a colourful picture together, points at a
word of the caption to show its attention overlay, and saves a screenshot.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def first_image(archive: Path, kind: str, folder: Path) -> Path:
    """The first image of class ``kind`` in the archive, copied to ``folder``."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 3 and parts[-2] == kind:
                path = folder / f"{kind}_{parts[-1]}"
                path.write_bytes(tar.extractfile(member).read())
                return path
    sys.exit(f"{archive}: no {kind} image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", default=os.environ.get("CAPTIONING_TEST_ARCHIVE"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "serve_page.png"))
    parser.add_argument("--word", default="hand", help="the caption word to point at")
    args = parser.parse_args()
    if not args.archive:
        sys.exit("name the MedNIST .tar.gz with --archive or $CAPTIONING_TEST_ARCHIVE")
    from playwright.sync_api import sync_playwright

    from captioning.bundled import resolve_run
    from captioning.serving.app import create_app
    from captioning.serving.server import running

    folder = Path(tempfile.mkdtemp())
    xray = first_image(Path(args.archive), "Hand", folder)
    y, x = np.mgrid[0:256, 0:256] / 255.0
    picture = folder / "holiday.png"
    buffer = io.BytesIO()
    Image.fromarray((np.stack([x, y, (1 - x) * y], -1) * 255).astype(np.uint8)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))))
    with running(create_app(resolve_run(None))) as url, sync_playwright() as playwright:
        args_ = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=chromium, args=args_)
        page = browser.new_page(viewport={"width": 960, "height": 760})
        page.goto(url)
        page.set_input_files("#file", [str(xray), str(picture)])
        page.locator(".result canvas[data-ready]").first.wait_for(timeout=60_000)
        page.locator(".word", has_text=args.word).first.hover()
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
