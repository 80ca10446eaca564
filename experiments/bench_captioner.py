"""Captioning throughput of a captioner run: images already decoded (uint8 from the prepared
cache), encoder + head + search, batched. Usage:

    python experiments/bench_captioner.py RUN_DIR [N_IMAGES] [BEAM ...]

Prints images/s per beam width (best of 3 timed passes after a warm-up) and the load average,
since the machine is shared.
"""

from __future__ import annotations

import os
import sys
import time

from captioning.caption import Captioner
from captioning.data.dataset import PreparedData


def main(run_dir: str, n: int = 2048, beams: tuple[int, ...] = (1, 3, 5)) -> None:
    captioner = Captioner(run_dir)
    images = PreparedData(captioner.run["data_root"]).split("test").images[:n]
    for beam in beams:
        captioner.caption(images[:512], beam=beam)  # compile
        best = float("inf")
        for _ in range(3):
            tic = time.perf_counter()
            captioner.caption(images, beam=beam, batch=1024)
            best = min(best, time.perf_counter() - tic)
        print(
            f"beam {beam}: {len(images) / best:,.0f} images/s ({len(images)} images, {best:.2f} s)"
        )
    print(f"load average: {os.getloadavg()}; cpus: {os.cpu_count()}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], int(args[1]) if len(args) > 1 else 2048, tuple(map(int, args[2:])) or (1, 3, 5))
