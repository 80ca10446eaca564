"""The speed table: each time against a reference measured in the same run, with the seconds
beside the ratio (``experiments/benchmarks/*.json``)."""

from __future__ import annotations

from table_common import DASH, row, sources


def cpu(artifact: dict) -> str:
    """``AMD EPYC, 2 cores``: the CPU a time was measured on."""
    machine = artifact.get("machine") or {}
    return f"{machine.get('cpu') or 'CPU not recorded'}, {machine.get('cores') or '?'} cores"


def _classifier_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``classifier`` benchmark."""
    where = cpu(bench["classifier"])
    train = bench["classifier"]["training"]
    ours = train["ours"]
    if "seed_notebook" in train:
        seed = train["seed_notebook"]
        ratio = train["train_seconds_ratio"]["seed_notebook_over_ours"]
        rows.append(
            [
                f"classifier training: ours ({ours['epochs']} epochs) vs the seed notebook as "
                f"it ran ({seed['epochs']} epochs)",
                f"{ours['train_loop_seconds']:.1f} s",
                f"{seed['train_seconds']:.1f} s",
                f"seed notebook takes {ratio:g}x our time",
                where,
            ]
        )
    if "seed_replica" in train:
        rep = train["seed_replica"]
        ratio = train["train_seconds_ratio"]["seed_replica_in_our_pipeline_over_ours"]
        rows.append(
            [
                f"classifier training: ours ({ours['epochs']} epochs) vs the seed's model "
                f"in our loop ({rep['epochs']} epochs)",
                f"{ours['train_loop_seconds']:.1f} s",
                f"{rep['train_loop_seconds']:.1f} s",
                f"seed's model takes {ratio:g}x our time",
                where,
            ]
        )
    pipe = bench["classifier"]["pipeline_images_per_second"]
    rows.append(
        [
            "input pipeline with augmentation (cache + tf.data vs per-image JPEG decode)",
            f"{pipe['ours_cache_tfdata']:,} images/s",
            f"{pipe['seed_decode_per_image']:,} images/s",
            f"{pipe['ratio']:.1f}x",
            where,
        ]
    )


def _bleu_speed_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``bleu_speed`` benchmark."""
    b = bench["bleu_speed"]
    where = cpu(b)
    secs, n = b["seconds_best"], b["corpus"]["captions"]
    refs = b["corpus"]["references_per_caption"]
    rows.append(
        [
            f"BLEU-1..4 of {n:,} captions x {refs} references",
            f"{secs['ours']:.2f} s",
            f"nltk {secs['nltk']:.2f} s, pycocoevalcap {secs['pycocoevalcap']:.2f} s",
            f"{b['speedup_vs_nltk']:.1f}x / {b['speedup_vs_pycocoevalcap']:.1f}x",
            where,
        ]
    )


def _captioner_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``captioner`` benchmark."""
    c = bench["captioner"]
    where = cpu(c)
    ips, lat = c["images_per_second"], c["single_image_latency"]
    per_second = f"{ips['greedy']:,.0f} / {ips['beam3']:,.0f} / {ips['beam5']:,.0f} images/s"
    latency = f"p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms"
    for what, ours in (
        ("captioning throughput, batched: greedy / beam 3 / beam 5", per_second),
        ("one image from a file (read, decode, caption, beam 3)", latency),
    ):
        rows.append([what, ours, "no reference run", DASH, where])


def _quickstart_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``quickstart`` benchmark."""
    q = bench["quickstart"]
    rows.append(
        [
            "the whole job: `captioning quickstart` vs the seed notebook's training alone",
            f"{q['quickstart_seconds']:.1f} s",
            f"{q['seed_notebook_seconds']:.1f} s",
            f"quickstart takes {q['ratio']:g}x the seed's training",
            cpu(q),
        ]
    )
    stages, previous = q["stages"], q.get("previous_classifier")
    reference, versus = stages["classifier"], "the classifier's"
    if previous:  # the reference: the previous default classifier, same run
        reference, versus = previous["seconds"], "the previous default classifier's"
    rows.append(
        [
            "captioner training (both stages, scope and calibration) inside that quickstart "
            f"vs {versus} training" + (" (stride-2 stem, 5 epochs), same run" if previous else ""),
            f"{stages['captioner']:.1f} s",
            f"{reference:.1f} s",
            f"captioner takes {stages['captioner'] / reference:.2f}x {versus} time",
            cpu(q),
        ]
    )


def _memory_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``memory`` benchmark."""
    m = bench["memory"]
    worst = max(m["peak_rss_mib"], key=m["peak_rss_mib"].get)
    rows.append(
        [
            f"peak resident memory, the largest of {len(m['peak_rss_mib'])} commands "
            "(each its own process: prepare, both trainings and evaluations, caption, export)",
            f"{m['largest_peak_mib']:,} MiB (`{worst}`)",
            f"limit {m['limit_mib']:,} MiB",
            "within the limit" if m["within_limit"] else "over the limit",
            cpu(m),
        ]
    )


def _serve_load_rows(bench: dict, rows: list[list[str]]) -> None:
    """Rows of the ``serve_load`` benchmark."""
    server, cli = bench["serve_load"]["server"], bench["serve_load"]["cli"]
    lat = server["latency"]
    hostile = server.get("hostile_requests")
    each = f"one file each ({hostile} of them hostile)" if hostile else "one image each"
    rows.append(
        [
            f"`captioning serve`: {server['requests']} requests, {server['concurrency']} at "
            f"a time, {each}",
            f"{server['requests_per_s']:.0f} requests/s, p50 {lat['p50_ms']:.0f} ms, "
            f"p95 {lat['p95_ms']:.0f} ms",
            f"`captioning caption` on the same {'good ' if hostile else ''}images, one process: "
            f"{cli['wall_s']:.1f} s",
            f"{server['requests_per_s'] / cli['images_per_s']:.1f}x the CLI's images/s (its "
            f"time includes {cli['one_image_wall_s']:.1f} s of start-up)",
            cpu(bench["serve_load"]),
        ]
    )


ROWS = (
    ("classifier", _classifier_rows),
    ("bleu_speed", _bleu_speed_rows),
    ("captioner", _captioner_rows),
    ("quickstart", _quickstart_rows),
    ("memory", _memory_rows),
    ("serve_load", _serve_load_rows),
)


def speed_rows(bench: dict) -> list[list[str]]:
    """(what, ours, reference in the same run, ratio, CPU) rows from the benchmark artifacts."""
    rows: list[list[str]] = []
    for key, add in ROWS:
        if key in bench:
            add(bench, rows)
    return rows


def speed(artifacts: dict) -> str:
    """Speed as ratios against a reference measured in the same run, seconds beside them."""
    bench = artifacts["benchmarks"]
    lines = [
        row(["what", "ours", "reference, same run", "ratio", "CPU"]),
        row(["---", "---:", "---:", "---", "---"]),
        *(row(r) for r in speed_rows(bench)),
    ]
    names = ("classifier", "bleu_speed", "captioner", "quickstart", "serve_load")
    used = [bench[k] for k in names if k in bench]
    return "\n".join(lines) + "\n\n" + sources(used)
