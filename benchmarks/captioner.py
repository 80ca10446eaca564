"""Captioning speed of a captioner run, in one process:

    python benchmarks/captioner.py RUN_DIR [--images 2048]

- throughput, images already decoded (uint8 from the prepared cache), batched, encoder +
  classifier head + search: greedy, beam 3, beam 5 (best of 3 passes after a warm-up);
- single-image latency from a file (read + decode + caption, beam 3): p50 and p95 over 50;
- peak RSS of the process.
Results: experiments/benchmarks/captioner.json. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--out")
    args = parser.parse_args()

    from common import record

    from captioning.data.dataset import PreparedData
    from captioning.data.images import load_image
    from captioning.inference import Captioner
    from captioning.utils.runs import peak_rss_mib

    captioner = Captioner(args.run_dir)
    data = PreparedData(captioner.run["data_root"])
    test = data.split("test")
    images = test.images[: args.images]
    throughput = {}
    for beam in (1, 3, 5):
        captioner.caption(images[:512], beam=beam)  # trace and warm up
        best = min(
            _timed(lambda b=beam: captioner.caption(images, beam=b, batch=1024)) for _ in range(3)
        )
        throughput["greedy" if beam == 1 else f"beam{beam}"] = round(len(images) / best, 1)
        print(f"beam {beam}: {len(images) / best:,.0f} images/s")
    files = [data.image_dir / p for p in test.paths[:50]]
    captioner.caption(load_image(files[0])[None], beam=3)
    latencies = [_timed(lambda f=f: captioner.caption(load_image(f)[None], beam=3)) for f in files]
    latency = {
        "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 2),
    }
    print(
        f"single image from a file, beam 3: p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms"
    )
    record(
        "captioner",
        {
            "run_dir": str(args.run_dir),
            "images": len(images),
            "images_per_second": throughput,
            "single_image_latency": latency,
            "peak_rss_mib": peak_rss_mib(),
        },
        args.out,
        data_card=data.card,
    )


def _timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


if __name__ == "__main__":
    main()
