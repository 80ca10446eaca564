"""The tables themselves: one function per table name, from the loaded artifacts to Markdown.

Every number printed here is read from an artifact; each table ends with the data, machine and
code its artifacts record (``null`` fields are said to be unrecorded, never guessed).
"""

from __future__ import annotations

import statistics

DASH = "–"
FLAGS = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"))


def pct(value, digits: int = 3) -> str:
    """``0.99962`` -> ``99.962%``; a missing value -> the dash."""
    return DASH if value is None else f"{100 * value:.{digits}f}%"


def num(value, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def data_text(data: dict | None) -> str:
    """Which MedNIST copy, how many images and the manifest checksum, as recorded."""
    data = data or {}
    sha = data.get("manifest_sha256")
    checksum = f"manifest sha256 `{sha[:12]}`" if sha else "manifest not recorded"
    if data.get("copy") is None and data.get("source"):
        return str(data["source"])
    if data.get("copy") is None:
        return f"data copy not recorded ({checksum})" if sha else "data not recorded"
    return f"{data['copy']} copy of MedNIST ({data['images']:,} images, {checksum})"


def machine_text(machine: dict | None) -> str:
    """CPU model, cores and the flags that matter, as recorded."""
    machine = machine or {}
    if not machine.get("cpu"):
        return "machine not recorded"
    text = f"{machine['cpu']}, {machine['cores']} cores"
    flags = machine.get("flags")
    if flags is None:
        return text + " (CPU flags not recorded)"
    said = ", ".join(f"{name} {'yes' if flags.get(key) else 'no'}" for key, name in FLAGS)
    return f"{text} ({said})"


def code_text(code: dict | None) -> str:
    code = code or {}
    if not code.get("commit"):
        return "commit not recorded"
    state = {True: ", uncommitted changes", False: "", None: ", dirty flag not recorded"}
    return f"code `{code['commit'][:7]}`{state[code.get('dirty')]}"


def code_of(artifact: dict) -> dict:
    """The code block; older benchmarks kept only the commit among their versions."""
    if artifact.get("code"):
        return artifact["code"]
    return {"commit": artifact.get("versions", {}).get("captioning_git_commit"), "dirty": None}


def merge(codes: list[str]) -> str:
    """``code `a`; code `b``` -> ``code `a`, `b```."""
    return "code " + ", ".join(c.removeprefix("code ") for c in codes)


def sources(artifacts: list[dict]) -> str:
    """One line per distinct data and machine: which artifacts, and the code they record."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for art in artifacts:
        what = f"{data_text(art.get('data'))}; {machine_text(art.get('machine'))}"
        paths, codes = groups.setdefault(what, ([], []))
        paths.append(f"`{art['_path']}`")
        if code_text(code_of(art)) not in codes:
            codes.append(code_text(code_of(art)))
    lines = [f"- {', '.join(p)}: {what}; {merge(c)}." for what, (p, c) in groups.items()]
    return "Sources:\n\n" + "\n".join(lines) + "\n" if lines else ""


def grouped(results: list[dict]) -> list[tuple[str, list[dict]]]:
    """Results grouped by their ``label``, in the order of their file names."""
    out: dict[str, list[dict]] = {}
    for art in results:
        out.setdefault(art["label"], []).append(art)
    return list(out.items())


def seed_summary(arts: list[dict]) -> tuple[dict, str, str]:
    """{seed: accuracy}, mean ± sd (percentage points) and the errors, seed by seed."""
    by_seed = {a["seed"]: a for a in sorted(arts, key=lambda a: a["seed"])}
    accs = [a["metrics"]["accuracy"] for a in by_seed.values()]
    spread = DASH
    if len(accs) > 1:
        spread = f"{100 * statistics.mean(accs):.3f}% ± {100 * statistics.stdev(accs):.3f}"
    errors = " / ".join(str(a["metrics"]["error_count"]) for a in by_seed.values())
    return {s: a["metrics"]["accuracy"] for s, a in by_seed.items()}, spread, errors


def classifier(artifacts: dict) -> str:
    """Test accuracy per seed of every recorded classifier, and the seed notebook's benchmark."""
    results = artifacts["results"].get("classifier", [])
    bench = artifacts["benchmarks"].get("classifier")
    seeds = sorted({a["seed"] for a in results} | {0})
    lines = [
        row(["model", "parameters", *(f"seed {s}" for s in seeds), "mean ± sd", "errors"]),
        row(["---", "---:", *("---:" for _ in seeds), "---:", "---"]),
    ]
    for label, arts in grouped(results):
        accs, spread, errors = seed_summary(arts)
        params = {a["training"].get("parameters") for a in arts}
        cells = [pct(accs.get(s)) for s in seeds]
        params = ", ".join(f"{p:,}" if p else DASH for p in params)
        lines.append(row([label, params, *cells, spread, errors]))
    used = list(results)
    if bench:
        training = bench["training"]
        for key, label in (
            ("seed_replica", "seed notebook's model in our pipeline and loop"),
            ("seed_notebook", "seed notebook as it ran (Keras 2 ImageDataGenerator + `fit`)"),
        ):
            if key in training:
                run = training[key]
                accs = [pct(run["test_accuracy"]) if s == 0 else DASH for s in seeds]
                lines.append(
                    row([label, f"{run['parameters']:,}", *accs, DASH, run["test_errors"]])
                )
        used.append(bench)
    return "\n".join(lines) + "\n\n" + sources(used)


CAPTIONER_COLUMNS = (
    ("BLEU-4", lambda m: num(m.get("bleu4"), 4)),
    ("CIDEr-D", lambda m: num(m.get("cider"))),
    ("ROUGE-L", lambda m: num(m.get("rouge_l"), 4)),
    ("class", lambda m: pct(m.get("caption_class_accuracy"), 2)),
    ("extent", lambda m: pct(m.get("findings_accuracy", {}).get("extent"), 2)),
    ("density", lambda m: pct(m.get("findings_accuracy", {}).get("density"), 2)),
    ("brightness", lambda m: pct(m.get("findings_accuracy", {}).get("brightness"), 2)),
    ("all right", lambda m: pct(m.get("findings_accuracy", {}).get("all"), 2)),
    ("ECE % class / worst finding", lambda m: ece_text(m.get("ece"))),
    ("out of scope", lambda m: pct(m.get("out_of_scope_rate"), 2)),
)


def ece_text(ece) -> str:
    """``0.04 / 0.61``: the class's expected calibration error and the largest of the findings',
    in percent; a dash where the evaluation had no calibration."""
    if not isinstance(ece, dict) or ece.get("class") is None:
        return DASH
    findings = [v for k, v in ece.items() if k != "class" and v is not None]
    worst = f"{100 * max(findings):.2f}" if findings else DASH
    return f"{100 * ece['class']:.2f} / {worst}"


def mean_metrics(metrics: list[dict]) -> dict:
    """The mean of each number (nested dicts included) over ``metrics``; keys all share."""
    out = {}
    for key, value in metrics[0].items():
        values = [m.get(key) for m in metrics]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = mean_metrics(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.mean(values)
    return out


def captioner_results(artifacts: dict) -> list[dict]:
    """Every result under ``experiments/results/captioner*/``, in file-name order."""
    groups = sorted(g for g in artifacts["results"] if g.startswith("captioner"))
    return [art for g in groups for art in artifacts["results"][g]]


def captioner(artifacts: dict) -> str:
    """One row per recorded captioner result; a note while there is none."""
    results = captioner_results(artifacts)
    if not results:
        return (
            "No captioner result is recorded yet. Record one with `experiments/record.py` "
            "(above), then run `python experiments/tables.py`.\n"
        )
    lines = [
        row(["model", *(name for name, _ in CAPTIONER_COLUMNS)]),
        row(["---", *("---:" for _ in CAPTIONER_COLUMNS)]),
    ]
    for label, arts in grouped(results):
        seeds = [a.get("seed") for a in arts]
        for art in arts:
            name = label if len(arts) == 1 else f"{label}, seed {art.get('seed')}"
            lines.append(row([name, *(cell(art["metrics"]) for _, cell in CAPTIONER_COLUMNS)]))
        if len(arts) > 1:  # the mean over seeds, in bold
            mean = mean_metrics([a["metrics"] for a in arts])
            name = f"**{label}, mean of seeds {', '.join(map(str, seeds))}**"
            lines.append(row([name, *(f"**{cell(mean)}**" for _, cell in CAPTIONER_COLUMNS)]))
    return "\n".join(lines) + "\n\n" + sources(results)


def cpu(artifact: dict) -> str:
    """``AMD EPYC, 2 cores``: the CPU a time was measured on."""
    machine = artifact.get("machine") or {}
    return f"{machine.get('cpu') or 'CPU not recorded'}, {machine.get('cores') or '?'} cores"


def speed_rows(bench: dict) -> list[list[str]]:
    """(what, ours, reference in the same run, ratio, CPU) rows from the benchmark artifacts."""
    rows: list[list[str]] = []
    if "classifier" in bench:
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
    if "bleu_speed" in bench:
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
    if "captioner" in bench:
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
    if "quickstart" in bench:
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
                f"vs {versus} training"
                + (" (stride-2 stem, 5 epochs), same run" if previous else ""),
                f"{stages['captioner']:.1f} s",
                f"{reference:.1f} s",
                f"captioner takes {stages['captioner'] / reference:.2f}x {versus} time",
                cpu(q),
            ]
        )
    if "memory" in bench:
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
    if "serve_load" in bench:
        server, cli = bench["serve_load"]["server"], bench["serve_load"]["cli"]
        lat = server["latency"]
        rows.append(
            [
                f"`captioning serve`: {server['requests']} requests, {server['concurrency']} at "
                "a time, one image each",
                f"{server['requests_per_s']:.0f} requests/s, p50 {lat['p50_ms']:.0f} ms, "
                f"p95 {lat['p95_ms']:.0f} ms",
                f"`captioning caption` on the same images, one process: {cli['wall_s']:.1f} s",
                f"{server['requests_per_s'] / cli['images_per_s']:.1f}x the CLI's images/s (its "
                f"time includes {cli['one_image_wall_s']:.1f} s of start-up)",
                cpu(bench["serve_load"]),
            ]
        )
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


def headline(artifacts: dict) -> str:
    """The README's summary: the headline classifier and captioner results and the speed."""
    results = artifacts["results"].get("classifier", [])
    chosen = [a for a in results if a.get("headline")]
    lines = [row(["", "result"]), row(["---", "---"])]
    used = list(chosen)
    if chosen:
        accs, spread, errors = seed_summary(chosen)
        n = chosen[0]["metrics"]["n"]
        seeds = ", ".join(str(s) for s in accs)
        mean = spread if len(accs) > 1 else pct(next(iter(accs.values())))
        lines.append(
            row(["classifier accuracy", f"{mean} (errors {errors} of {n:,}; seeds {seeds})"])
        )
    caps = [a for a in captioner_results(artifacts) if a.get("headline")]
    for label, arts in grouped(caps):  # several seeds: their mean
        m = mean_metrics([a["metrics"] for a in arts])
        cells = ", ".join(f"{name} {cell(m)}" for name, cell in CAPTIONER_COLUMNS)
        if len(arts) > 1:
            label += f" (mean of seeds {', '.join(str(a.get('seed')) for a in arts)})"
        lines.append(row([f"captioner: {label}", cells]))
    if not caps:
        lines.append(row(["captioner", "no recorded result yet (see experiments/README.md)"]))
    used += caps
    speed_cells = speed_rows(artifacts["benchmarks"])
    if speed_cells and "classifier" in artifacts["benchmarks"]:
        first = speed_cells[0]
        text = f"{first[0]}: {first[1]} vs {first[2]}; {first[3]} ({first[4]}, same run)"
        lines.append(row(["speed", text]))
        used.append(artifacts["benchmarks"]["classifier"])
    return "\n".join(lines) + "\n\n" + sources(used)


RENDERERS = {
    "headline": headline,
    "classifier": classifier,
    "captioner": captioner,
    "speed": speed,
}
