"""Load test of ``captioning serve`` against the CLI, on the same real images, in one run:

    python benchmarks/serve_load.py [--archive MedNIST.tar.gz] [--requests 500] [--concurrency 32]

1. ``captioning serve`` (bundled model) starts in its own process on 127.0.0.1; after a warm-up,
   ``--requests`` POST /caption requests (one MedNIST image each, all different) are sent,
   ``--concurrency`` at a time (httpx, asyncio). Every answer must be a 200 with a caption or an
   out-of-scope entry: any error fails the benchmark (exit code 1). Throughput and latency.
2. ``captioning caption DIR --json`` on the same images in one process call (start-up, model
   load and captioning), and on one image (the fixed cost), timed from outside.
3. ``caption_entries`` in this process on the same images (decode + caption, after a warm-up).
The server's captions are compared with the CLI's. Results: experiments/benchmarks/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def extract(archive: Path, folder: Path, count: int) -> tuple[list[Path], int]:
    """The first ``count`` images, taken round-robin by class in archive order, copied to
    ``folder``; and how many images the archive holds."""
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    total = 0
    per_class = -(-count // 6)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or not parts[-1].endswith(".jpeg"):
                continue
            total += 1
            kept = by_class.setdefault(parts[-2], [])
            if len(kept) < per_class:
                kept.append((f"{parts[-2]}_{parts[-1]}", tar.extractfile(member).read()))
    files = []
    for i in range(count):
        name, data = list(by_class.values())[i % len(by_class)][i // len(by_class)]
        files.append(folder / name)
        files[-1].write_bytes(data)
    return files, total


def percentiles(seconds: list[float]) -> dict:
    ms = 1000 * np.asarray(seconds)
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)} | {
        "max_ms": round(float(ms.max()), 1)
    }


async def load(url: str, files: list[Path], concurrency: int) -> tuple[list, list, float]:
    """POST each file once, ``concurrency`` at a time: (latencies, answers, wall seconds)."""
    import httpx

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(path: Path):
            async with gate:
                start = time.perf_counter()
                try:
                    answer = await client.post(
                        f"{url}/caption", files=[("file", (path.name, path.read_bytes()))]
                    )
                    body = answer.json() if answer.status_code == 200 else answer.text
                    result = (answer.status_code, body)
                except Exception as err:  # counted as an error, reported below
                    result = (None, f"{type(err).__name__}: {err}")
                return time.perf_counter() - start, result

        start = time.perf_counter()
        done = await asyncio.gather(*(one(p) for p in files))
        wall = time.perf_counter() - start
    return [d[0] for d in done], [d[1] for d in done], wall


def child_env() -> dict:
    """This checkout first on the path of the commands started here."""
    from common import ROOT

    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(log: Path) -> tuple[subprocess.Popen, str, float]:
    """``captioning serve`` in its own process; returns when /health answers."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "captioning.cli", "serve", "--port", str(port)]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=child_env()
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            sys.exit(f"the server stopped:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url, time.perf_counter() - start
        except httpx.TransportError:
            time.sleep(0.2)


def time_cli(paths: list[Path]) -> tuple[float, list[dict]]:
    command = [sys.executable, "-m", "captioning.cli", "caption", *map(str, paths), "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=child_env())
    return time.perf_counter() - start, [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", default=os.environ.get("CAPTIONING_TEST_ARCHIVE"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=64, help="requests before timing")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not args.archive:
        sys.exit("name the MedNIST .tar.gz with --archive or $CAPTIONING_TEST_ARCHIVE")

    from common import record

    from captioning.bundled import resolve_run
    from captioning.commands.caption import read_inputs
    from captioning.inference import Captioner, caption_entries
    from captioning.utils.provenance import data_copy

    archive = Path(args.archive)
    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    files, total = extract(archive, work, args.requests)
    load_start = os.getloadavg()

    process, url, startup = start_server(work / "server.log")
    try:
        asyncio.run(load(url, files[: args.warmup], args.concurrency))  # traces batch shapes
        latencies, answers, wall = asyncio.run(load(url, files, args.concurrency))
    finally:
        process.terminate()
        process.wait(30)
    errors = [
        (f.name, a)
        for f, a in zip(files, answers, strict=True)
        if a[0] != 200 or "error" in a[1]["results"][0]
    ]
    served = [a[1]["results"][0] for a in answers if a[0] == 200]
    print(f"server: {len(files) / wall:.1f} requests/s, {len(errors)} errors")

    cli_seconds, cli_entries = time_cli(files)
    cli_one_seconds, _ = time_cli(files[:1])
    print(f"CLI: {cli_seconds:.1f} s for {len(files)} images, {cli_one_seconds:.1f} s for one")
    captioner = Captioner(resolve_run(None))
    caption_entries(captioner, read_inputs([str(f) for f in files[:64]]))  # trace and warm up
    start = time.perf_counter()
    caption_entries(captioner, read_inputs([str(f) for f in files]))
    in_process = time.perf_counter() - start

    key = lambda e: (e.get("caption"), e.get("class"), e.get("in_scope"))  # noqa: E731
    agree = sum(key(s) == key(c) for s, c in zip(served, cli_entries, strict=False))
    result = {
        "benchmark": "captioning serve under load vs the caption CLI, same images, same run",
        "note": "shared 2-core machine: other work ran beside it (see load_average); the "
        "server and this client share the cores",
        "data": {
            "copy": data_copy(total),
            "images": total,
            "archive_md5": hashlib.md5(archive.read_bytes()).hexdigest(),
            "used": f"{len(files)} images, round-robin over the classes in archive order",
        },
        "model": "bundled (captioning/pretrained/captioner), beam 3",
        "load_average_at_start": load_start,
        "server": {
            "requests": len(files),
            "concurrency": args.concurrency,
            "images_per_request": 1,
            "warmup_requests": args.warmup,
            "errors": len(errors),
            "startup_s": round(startup, 2),
            "wall_s": round(wall, 2),
            "requests_per_s": round(len(files) / wall, 2),
            "latency": percentiles(latencies),
            "out_of_scope": sum(e.get("in_scope") is False for e in served),
            "same_caption_class_scope_as_cli": agree,
        },
        "cli": {
            "command": "captioning caption IMAGE... --json (one process, the same images)",
            "wall_s": round(cli_seconds, 2),
            "images_per_s": round(len(files) / cli_seconds, 2),
            "one_image_wall_s": round(cli_one_seconds, 2),
        },
        "in_process": {
            "call": "read_inputs + caption_entries, one batch, after a warm-up",
            "wall_s": round(in_process, 2),
            "images_per_s": round(len(files) / in_process, 2),
        },
    }
    record("serve_load", result, args.out)
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. {errors[0]}")


if __name__ == "__main__":
    main()
