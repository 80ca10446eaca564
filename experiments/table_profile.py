"""The training profiles and the speed levers of experiments/speed.md, rendered from
``experiments/benchmarks/profile_training*.json`` (``benchmarks/profile_training.py``) and
``levers*.json`` (``benchmarks/levers.py``)."""

from __future__ import annotations

from table_common import DASH, row, sources

FITS = (
    ("classifier", "classifier"),
    ("captioner stage 1", "stage1"),
    ("captioner stage 2", "stage2"),
)
# the loop's timers (captioning.training.timing); encode_images runs inside validation_features
PHASES = {
    "train_steps": "train steps",
    "first_step": "first step (tracing, or XLA compile)",
    "input_wait": "waiting for input",
    "input_teardown": "input teardown",
    "validation_steps": "validation steps (teacher forced)",
    "validation_features": "validation features (encoder on val images)",
    "greedy_decoding": "greedy decoding of the val images",
    "caption_metrics": "caption metrics (BLEU, read-back)",
    "checkpointing": "checkpointing",
    "dataset_setup": "dataset set-up",
    "history": "history (log and curves)",
    "weights_digest": "weights digest",
    "other": "other (unattributed)",
}


def seconds(value: float) -> str:
    """Seconds to a tenth; under a tenth, to the first digit that is not zero."""
    if value >= 0.1 or value == 0:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.3f}"


def fit_of(bench: dict, key: str) -> dict | None:
    """The profile of one fit: the classifier's command, or a stage of the captioner's."""
    commands = bench["commands"]
    return commands.get("classifier") if key == "classifier" else commands["captioner"].get(key)


def band(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``1.3-1.7``: the least and largest of ``values`` (one value when they round alike)."""
    low, high = (f"{v * scale:.{digits}f}" for v in (min(values), max(values)))
    return low if low == high else f"{low}-{high}"


def profile_table(bench: dict) -> str:
    """Seconds per phase (share of the fit) for each fit of one profile, then its rates."""
    fits = [(label, fit_of(bench, key)) for label, key in FITS]
    lines = [row(["seconds (share of the fit)", *(label for label, _ in fits)])]
    lines.append("|---|" + "---:|" * len(fits))
    for phase, label in PHASES.items():
        cells = []
        for _, fit in fits:
            value = fit["phases"].get(phase, {}).get("seconds")
            share = f" ({value / fit['fit_seconds']:.0%})" if value else ""
            cells.append(DASH if value is None else seconds(value) + share)
        if any(c != DASH for c in cells):
            lines.append(row([label, *cells]))
    lines.append(row(["**fit**", *(f"**{seconds(f['fit_seconds'])}**" for _, f in fits)]))
    lines.append(
        row(["train images/s", *(f"{f['train_images_per_second']:,.0f}" for _, f in fits)])
    )
    flops = [f"{f['train_flops_per_example'] / 1e6:.1f} M" for _, f in fits]
    lines.append(row(["FLOPs / training example", *flops]))
    achieved = [
        f"{f['train_flop_per_second'] / 1e9:.1f} ({f['share_of_matmul_peak']:.0%})" for _, f in fits
    ]
    lines.append(row(["achieved GFLOP/s (share of matmul peak)", *achieved]))
    return "\n".join(lines) + "\n\n" + profile_facts(bench) + "\n\n" + sources([bench])


def profile_facts(bench: dict) -> str:
    """The run's load, matmul peak, the captioner's time outside its fits and its peak RSS."""
    captioner = bench["commands"]["captioner"]
    outside = captioner["outside_fits_phases"]
    peak = bench["matmul_peak_flop_per_second"]
    load = [bench["load_average_before"][0], bench["load_average"][0]]
    return (
        f"1-minute load average {band(load)} (before, after); matmul peak "
        f"{band(list(peak.values()), 1e-9, 0)} GFLOP/s (before, after). Captioner outside its "
        f"fits: {seconds(captioner['outside_fits_seconds'])} s of "
        f"{seconds(captioner['wall_seconds'])} s (calibration "
        f"{seconds(outside['calibrate_run']['seconds'])}, feature cache "
        f"{seconds(outside['encode_images']['seconds'])}); the captioner command's peak RSS "
        f"(after the classifier, in one process) {captioner['peak_rss_mib']:,.0f} MiB."
    )


LEVERS = {
    "xla": "XLA (`jit_compile=True`)",
    "bf16": "bfloat16 mixed precision (`mixed_bfloat16`)",
    "bf16_xla": "bfloat16 + XLA",
    "batch256": "batch 256",
    "batch512": "batch 512",
    "xla_batch256": "XLA + batch 256",
}
THREADS = {
    "intra1_inter1": "threads intra/inter 1/1",
    "intra2_inter1": "threads 2/1",
    "intra2_inter2": "threads 2/2",
    "intra4_inter1": "threads 4/1",
}


def levers_table(runs: list[dict]) -> str:
    """Each lever's train-step throughput as a ratio to float32 at batch 128, per model and
    run (``runs``: the levers benchmarks, each at its own load)."""
    models = (("classifier", "classifier"), ("captioner_stage1", "captioner stage 1"))
    columns = [(m, r) for m, _ in models for r in runs]
    header = [
        f"{label}, load {band([r['load_average_before'][0], r['load_average'][0]])}"
        for key, label in models
        for r in runs
    ]
    lines = [row(["lever (ratio to float32, batch 128)", *header])]
    lines.append("|---|" + "---:|" * len(columns))
    for group, names in (("levers", LEVERS), ("threads", THREADS)):
        for key, label in names.items():
            cells = []
            for model, run in columns:
                found = run[group].get(model, {}).get(key)
                cells.append(DASH if found is None else f"{found['ratio_to_baseline']:.2f}x")
            lines.append(row([label, *cells]))
    base = [f"{r['levers'][model]['float32']['images_per_second']:,.0f}" for model, r in columns]
    lines.append(row(["float32 baseline, images/s", *base]))
    return "\n".join(lines) + "\n\n" + sources(runs)


def renderers() -> dict:
    """The speed.md tables by name, each a function of the loaded artifacts."""

    def profile(name: str):
        return lambda artifacts: profile_table(artifacts["benchmarks"][name])

    names = ("profile_training", "profile_training_low_load", "profile_training_numpy_pipeline")
    found = {name.replace("_", "-"): profile(name) for name in names}
    found["profile-training-stride4"] = profile("profile_training_stride4")
    found["levers"] = lambda artifacts: levers_table(
        [artifacts["benchmarks"]["levers"], artifacts["benchmarks"]["levers_low_load"]]
    )
    return found
