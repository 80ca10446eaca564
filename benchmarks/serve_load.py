"""Load test of ``captioning serve`` under pressure, against the CLI on the same real images:

    python benchmarks/serve_load.py [--archive MedNIST.tar.gz] [--requests 2000] \
        [--concurrency 32] [--hostile-every 10]

1. ``captioning serve`` (bundled model) starts in its own process on 127.0.0.1; after a warm-up,
   ``--requests`` POST /caption requests (one file each) are sent, ``--concurrency`` at a time
   (httpx, asyncio). Every ``--hostile-every``-th file is hostile (``hostile_files.py``: empty,
   truncated PNG and JPEG, a decompression bomb, a 20,000 x 20,000 PNG header, text named .png,
   a DICOM without pixels), the others are MedNIST images, all different. Recorded: status
   counts (a 5xx or a dropped connection fails the benchmark, as does a good image without
   its caption or entry), each hostile kind's status and line, latency, and the server's
   resident memory every 100 requests (it must stay within 5% of its value after the first
   100). Meanwhile two slow clients send a request 1 byte per second (one from its first
   byte, one after sending its headers at once): the server must cut them off within 30 s
   (its default ``--request-timeout``). Exit code 1 on any failure, after writing the results.
2. ``captioning caption DIR --json`` on the same good images in one process call (start-up,
   model load and captioning), and on one image (the fixed cost), timed from outside.
3. ``caption_entries`` in this process on the same good images (decode + caption, after a
   warm-up).
The server's captions are compared with the CLI's. Results, with the sha256 of the bundled
weights they were measured on: experiments/benchmarks/serve_load.json.
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
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
RSS_EVERY = 100  # requests between samples of the server's resident memory
RSS_FLAT = 0.05  # the most the server's memory may grow after the first RSS_EVERY requests
SLOW_CUT_OFF_S = 30  # a client sending 1 byte per second is gone within this


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


async def load(
    url: str, files: list[tuple[str, bytes]], concurrency: int, pid: int | None = None
) -> tuple[list, list, float, list]:
    """POST each (name, bytes) once, ``concurrency`` at a time: (latencies, answers, wall
    seconds, the resident MiB of process ``pid`` after every ``RSS_EVERY`` answers)."""
    import httpx
    from common import rss_mib

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    answered, rss = [0], []

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(name: str, data: bytes):
            async with gate:
                start = time.perf_counter()
                try:
                    answer = await client.post(f"{url}/caption", files=[("file", (name, data))])
                    try:
                        result = (answer.status_code, answer.json())
                    except ValueError:  # not JSON (uvicorn's own 500, say)
                        result = (answer.status_code, answer.text[:200])
                except Exception as err:  # counted as an error, reported below
                    result = (None, f"{type(err).__name__}: {err}")
                answered[0] += 1
                if pid is not None and answered[0] % RSS_EVERY == 0:
                    rss.append(round(rss_mib(pid), 1))
                return time.perf_counter() - start, result

        start = time.perf_counter()
        done = await asyncio.gather(*(one(name, data) for name, data in files))
        wall = time.perf_counter() - start
    if pid is not None and answered[0] % RSS_EVERY:
        rss.append(round(rss_mib(pid), 1))  # at the end too
    return [d[0] for d in done], [d[1] for d in done], wall, rss


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


def mixed(good: list[Path], hostile: dict[str, bytes], every: int) -> list[tuple[str, bytes]]:
    """(name, bytes) to send: every ``every``-th a hostile file (its kinds in turn), else the
    next good image; as many as there are good images plus hostile ones."""
    out, kinds, images = [], list(hostile), iter(good)
    while True:
        if len(out) % every == every - 1:
            kind = kinds[(len(out) // every) % len(kinds)]
            out.append((kind, hostile[kind]))
            continue
        path = next(images, None)
        if path is None:
            return out
        out.append((path.name, path.read_bytes()))


def statuses(answers: list) -> dict[str, int]:
    return dict(sorted(Counter(str(a[0]) for a in answers).items()))


def outcome(files: list, answers: list, latencies: list, hostile: dict) -> dict:
    """What the server answered: status counts, the good images' entries, each hostile kind's
    statuses and line, latencies."""
    good = [(a, t) for (name, _), a, t in zip(files, answers, latencies, strict=True)
            if name not in hostile]  # fmt: skip
    entries = [a[1]["results"][0] for a, _ in good if a[0] == 200]
    kinds = {}
    for kind in hostile:
        got = [a for (name, _), a in zip(files, answers, strict=True) if name == kind]
        lines = sorted({a[1].get("error", "") for a in got if isinstance(a[1], dict)})
        kinds[kind] = {"sent": len(got), "statuses": statuses(got), "lines": lines}
    return {
        "statuses": statuses(answers),
        "5xx": sum(a[0] is not None and a[0] >= 500 for a in answers),
        "no_answer": sum(a[0] is None for a in answers),  # connection dropped or timed out
        "good": {
            "sent": len(good),
            "answered_with_an_entry": sum("error" not in e for e in entries),
            "captioned": sum("caption" in e for e in entries),
            "out_of_scope": sum(e.get("in_scope") is False for e in entries),
        },
        "hostile": kinds,
        "latency": percentiles(latencies),
        "latency_good": percentiles([t for _, t in good]),
    }


def slow_clients(url: str, image: Path) -> tuple[list[threading.Thread], dict]:
    """Two clients sending a POST /caption of ``image`` 1 byte per second, in threads (started
    here; join them): one from its first byte, one after its headers. The dict gets, per
    client, the seconds from connecting to the server's close and its answer's first line."""
    from hostile_files import multipart_request, trickle

    request, body_at = multipart_request(image.name, image.read_bytes())
    found: dict = {}

    def client(case: str, at_once: int):
        answer, seconds = trickle(url, request, at_once, limit=2 * SLOW_CUT_OFF_S)
        found[case] = {
            "bytes_sent_at_once": at_once,
            "then": "1 byte per second",
            "cut_off_after_s": round(seconds, 2),
            "answer": answer.split(b"\r\n", 1)[0].decode("latin-1") or "(closed, no answer)",
        }

    cases = {"slow_headers": 0, "slow_upload": body_at}
    threads = [threading.Thread(target=client, args=case) for case in cases.items()]
    for thread in threads:
        thread.start()
    return threads, found


def memory(samples: list[float]) -> dict:
    """The server's resident memory after each ``RSS_EVERY`` requests, and whether it stayed
    within ``RSS_FLAT`` of the first sample."""
    growth = samples[-1] / samples[0] - 1
    return {
        f"rss_mib_every_{RSS_EVERY}_requests": samples,
        f"rss_mib_after_{RSS_EVERY}": samples[0],
        "rss_mib_at_end": samples[-1],
        "rss_mib_peak_sampled": max(samples),
        "growth_after_first_100": round(growth, 4),
        "flat_within_5_percent": abs(growth) <= RSS_FLAT,
    }


def failures(server: dict, expected_entries: int) -> list[str]:
    """Why the run fails the benchmark's bar, if it does."""
    out = []
    if server["5xx"] or server["no_answer"]:
        out.append(f"{server['5xx']} 5xx answers, {server['no_answer']} requests unanswered")
    if server["good"]["answered_with_an_entry"] != expected_entries:
        out.append(
            f"{server['good']['answered_with_an_entry']} of {expected_entries} images got an entry"
        )
    for case, seen in server["slow_clients"].items():
        if seen["cut_off_after_s"] > SLOW_CUT_OFF_S:
            out.append(f"{case} client still connected after {seen['cut_off_after_s']} s")
    if not server["memory"]["flat_within_5_percent"]:
        out.append(f"server memory grew {server['memory']['growth_after_first_100']:.1%}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", default=os.environ.get("CAPTIONING_TEST_ARCHIVE"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hostile-every", type=int, default=10, help="1 hostile file in N")
    parser.add_argument("--warmup", type=int, default=64, help="requests before timing")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not args.archive:
        sys.exit("name the MedNIST .tar.gz with --archive or $CAPTIONING_TEST_ARCHIVE")

    from common import record
    from hostile_files import hostile_files

    from captioning.bundled import bundle_sha256, resolve_run
    from captioning.commands.caption import read_inputs
    from captioning.entries import caption_entries
    from captioning.inference import Captioner
    from captioning.utils.provenance import data_copy

    archive = Path(args.archive)
    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    n_good = args.requests - args.requests // args.hostile_every
    good, total = extract(archive, work, n_good + args.warmup)
    good, warmup = good[:n_good], good[n_good:]
    hostile = hostile_files(good[0].read_bytes())
    files = mixed(good, hostile, args.hostile_every)
    load_start = os.getloadavg()

    process, url, startup = start_server(work / "server.log")
    try:
        warm = [(p.name, p.read_bytes()) for p in warmup]
        asyncio.run(load(url, warm, args.concurrency))  # traces batch shapes
        threads, slow = slow_clients(url, warmup[0])
        latencies, answers, wall, rss = asyncio.run(load(url, files, args.concurrency, process.pid))
        for thread in threads:
            thread.join()
    finally:
        process.terminate()
        process.wait(30)
    server = outcome(files, answers, latencies, hostile)
    server["memory"] = memory(rss)
    server["slow_clients"] = slow
    print(f"server: {len(files) / wall:.1f} requests/s, {json.dumps(server['statuses'])}")
    served = [a[1]["results"][0] for (name, _), a in zip(files, answers, strict=True)
              if name not in hostile and a[0] == 200]  # fmt: skip

    cli_seconds, cli_entries = time_cli(good)
    cli_one_seconds, _ = time_cli(good[:1])
    print(f"CLI: {cli_seconds:.1f} s for {len(good)} images, {cli_one_seconds:.1f} s for one")
    captioner = Captioner(resolve_run(None))
    caption_entries(captioner, read_inputs([str(f) for f in warmup]))  # trace and warm up
    start = time.perf_counter()
    caption_entries(captioner, read_inputs([str(f) for f in good]))
    in_process = time.perf_counter() - start

    key = lambda e: (e.get("caption"), e.get("class"), e.get("in_scope"))  # noqa: E731
    agree = sum(key(s) == key(c) for s, c in zip(served, cli_entries, strict=False))
    weights = resolve_run(None) / "best_model.keras"
    result = {
        "benchmark": "captioning serve under load, 1 request in "
        f"{args.hostile_every} hostile, vs the caption CLI on the same good images, same run",
        "note": "shared 2-core machine: other work ran beside it (see load_average); the "
        "server and this client share the cores",
        "data": {
            "copy": data_copy(total),
            "images": total,
            "archive_md5": hashlib.md5(archive.read_bytes()).hexdigest(),
            "used": f"{len(good)} images (+{len(warmup)} for the warm-up), round-robin over "
            "the classes in archive order; hostile files made by benchmarks/hostile_files.py",
        },
        "model": "bundled (captioning/pretrained/captioner), beam 3",
        # tests/test_artifacts.py: this record is stale once the bundled weights change
        "model_weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "bundle_sha256": bundle_sha256(weights.parent),  # weights, scope, temperatures, ...
        "load_average_at_start": load_start,
        "server": {
            "requests": len(files),
            "concurrency": args.concurrency,
            "images_per_request": 1,
            "hostile_requests": len(files) - len(good),
            "warmup_requests": len(warmup),
            "startup_s": round(startup, 2),
            "wall_s": round(wall, 2),
            "requests_per_s": round(len(files) / wall, 2),
            **server,
            "good_same_caption_class_scope_as_cli": agree,
        },
        "cli": {
            "command": "captioning caption IMAGE... --json (one process, the same good images)",
            "wall_s": round(cli_seconds, 2),
            "images_per_s": round(len(good) / cli_seconds, 2),
            "one_image_wall_s": round(cli_one_seconds, 2),
        },
        "in_process": {
            "call": "read_inputs + caption_entries, one batch, after a warm-up",
            "wall_s": round(in_process, 2),
            "images_per_s": round(len(good) / in_process, 2),
        },
    }
    failed = failures(server, len(good))
    result["passed"] = not failed
    record("serve_load", result, args.out)
    if failed:
        sys.exit("; ".join(failed))


if __name__ == "__main__":
    main()
