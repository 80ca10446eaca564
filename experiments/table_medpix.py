"""The MedPix 2.0 tables of experiments/medpix.md (``experiments/results/medpix/*.json``, one
artifact per encoder and seed, written by experiments/medpix.sh): each encoder's captioner
beside the baselines of the same runs, then what its captions state of the images' labels;
``medpix_128``: the same for ``experiments/results/medpix_128/`` (128x128 images), after a
comparison with the 64x64 grey label encoder."""

from __future__ import annotations

from table_common import DASH, row, sources, spread

SCORES = (("BLEU-4", "bleu4"), ("METEOR", "meteor"), ("ROUGE-L", "rouge_l"), ("CIDEr-D", "cider"))
BASELINES = (
    ("the training caption most like the others (constant)", "constant"),
    ("the training sentence best on val (constant_best_val)", "constant_best_val"),
    ("nearest training images on the encoder's features, consensus caption", "retrieval_features"),
    ("nearest training images on raw pixels, consensus caption", "retrieval_pixels"),
    ("label heads, then the consensus caption of those labels", "classify_then_template"),
)
CONTENT = ("modality", "plane", "location")


def by_label(results: list[dict]) -> dict[str, list[dict]]:
    """Artifacts grouped by their ``label`` (the encoder), in file-name order."""
    groups: dict[str, list[dict]] = {}
    for art in sorted(results, key=lambda a: a["_path"]):
        groups.setdefault(art["label"], []).append(art)
    return groups


def recorded(metrics: list[dict]) -> list[tuple[str, str]]:
    """The ``BASELINES`` that some of ``metrics`` scored (a baseline added after a run was
    evaluated, or not computed for it, gets no row of dashes)."""
    return [
        (name, key)
        for name, key in BASELINES
        if any("bleu4" in ((m.get("baselines") or {}).get(key) or {}) for m in metrics)
    ]


def scores_table(groups: dict[str, list[dict]]) -> list[str]:
    """One row for each encoder's captioner and one for each of its runs' baselines."""
    lines = [row(["captioner or baseline", *(n for n, _ in SCORES)]), "|---|" + "---:|" * 4]
    for label, arts in groups.items():
        metrics = [a["metrics"] for a in arts]
        lines.append(
            row(
                [
                    f"**captioner, {label}**",
                    *(spread([m.get(k) for m in metrics]) for _, k in SCORES),
                ]
            )
        )
        for name, key in recorded(metrics):
            blocks = [(m.get("baselines") or {}).get(key) or {} for m in metrics]
            lines.append(
                row([f"{name} ({label})", *(spread([b.get(k) for b in blocks]) for _, k in SCORES)])
            )
    return lines


def interval(entry: dict | None) -> str:
    """``+0.031 [+0.012, +0.050]``: a paired-bootstrap difference and its 95% interval."""
    if not entry:
        return DASH
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def paired(art: dict, key: str) -> dict | None:
    """The paired bootstrap of baseline ``key`` in an artifact, or None."""
    return ((art["metrics"].get("baselines") or {}).get(key) or {}).get("paired_bootstrap")


def bootstrap_table(groups: dict[str, list[dict]]) -> list[str]:
    """Per run and baseline, the captioner minus the baseline with its paired-bootstrap 95%
    interval over the test images (``baselines.<name>.paired_bootstrap`` of the evaluate
    report); nothing when no artifact carries one (runs evaluated before it existed)."""
    runs = [(label, art) for label, arts in groups.items() for art in arts]
    found = [b for _, art in runs for _, key in BASELINES if (b := paired(art, key))]
    if not found:
        return []
    scores = [(n, k) for n, k in SCORES if any(k in b for b in found)]
    lines = [
        f"Captioner minus baseline, paired bootstrap 95% interval over the test images "
        f"({found[0]['resamples']} resamples, seed {found[0]['seed']}): one run each, so it "
        "says nothing of the spread over seeds.",
        "",
        row(["run", "baseline", *(n for n, _ in scores)]),
        "|---|---|" + "---:|" * len(scores),
    ]
    for label, art in runs:
        for _, key in recorded([a["metrics"] for _, a in runs]):
            block = paired(art, key) or {}
            cells = (interval(block.get(k)) for _, k in scores)
            lines.append(row([f"{label}, seed {art.get('seed')}", key, *cells]))
    return lines


def content_table(groups: dict[str, list[dict]]) -> list[str]:
    """Per encoder and label column: share of captions stating a value, share right when
    stated; last, the same reading of the reference captions (the ceiling)."""
    lines = [
        row(["captions of", *(f"{c}: stated / right" for c in CONTENT), "distinct", "words used"]),
        "|---|" + "---:|" * (len(CONTENT) + 2),
    ]

    def cells(blocks: list[dict]) -> list[str]:
        return [
            f"{spread([b.get(c, {}).get('stated') for b in blocks], True)} / "
            f"{spread([b.get(c, {}).get('right_when_stated') for b in blocks], True)}"
            for c in CONTENT
        ]

    for label, arts in groups.items():
        metrics = [a["metrics"] for a in arts]
        lines.append(
            row(
                [
                    f"captioner, {label}",
                    *cells([m.get("content") or {} for m in metrics]),
                    spread([m.get("distinct_share") for m in metrics], True),
                    spread([m.get("vocabulary_used") for m in metrics], digits=0),
                ]
            )
        )
    first = next(iter(groups.values()))[0]["metrics"].get("content") or {}
    ceiling = [{c: first.get(c, {}).get("ceiling", {}) for c in CONTENT}]  # the same test images
    lines.append(row(["the reference captions (ceiling)", *cells(ceiling), DASH, DASH]))
    return lines


def medpix(artifacts: dict, group: str = "medpix") -> str:
    """Both MedPix tables of results ``group``, or a note while no result is recorded."""
    results = artifacts["results"].get(group, [])
    if not results:
        where = "" if group == "medpix" else f" in results/{group}"
        return f"No MedPix 2.0 result is recorded{where} yet (run experiments/medpix.sh).\n"
    groups = by_label(results)
    seeds = sorted({a.get("seed") for a in results}, key=str)
    head = f"Mean ± sd over seeds {', '.join(map(str, seeds))}; test split carved from train."
    if len(seeds) == 1:  # "± 0.000" is then no spread, only one run
        head = f"One seed ({seeds[0]}): ± 0 is no spread; test split carved from train."
    intervals = bootstrap_table(groups)
    lines = [head, "", *scores_table(groups), "", *([*intervals, ""] if intervals else [])]
    lines += [*content_table(groups), "", sources(results)]
    return "\n".join(lines) + "\n"


def setting(art: dict) -> str:
    """``128x128 RGB``: the artifact's image setting; runs recorded before the setting was
    kept were all 64x64 grey (the only setting then)."""
    image = art.get("image") or {}
    size, channels = image.get("size") or 64, image.get("channels") or 1
    return f"{size}x{size} {'RGB' if channels == 3 else 'grey'}"


def right_stated(content: list[dict], column: str) -> str:
    """``88.7 ± 0.5% (92.5 ± 4.4%)``: right when stated (stated) of one label column, over
    the runs' ``content`` blocks."""
    right = spread([b.get(column, {}).get("right_when_stated") for b in content], True)
    return f"{right} ({spread([b.get(column, {}).get('stated') for b in content], True)})"


def setting_table(arts_by_label: dict[str, list[dict]]) -> list[str]:
    """One row per encoder and image setting: seeds, BLEU-4, CIDEr-D, content right when
    stated (stated in brackets), distinct share of the test captions."""
    lines = [
        row(["captioner", "images", "seeds", "BLEU-4", "CIDEr-D",
             *(f"{c}: right (stated)" for c in CONTENT), "distinct"]),
        "|---|---|---:|" + "---:|" * (len(CONTENT) + 3),
    ]  # fmt: skip
    for label, arts in arts_by_label.items():
        metrics = [a["metrics"] for a in arts]
        content = [m.get("content") or {} for m in metrics]
        cells = [right_stated(content, c) for c in CONTENT]
        seeds = ", ".join(str(a.get("seed")) for a in arts)
        score = [spread([m.get(k) for m in metrics]) for k in ("bleu4", "cider")]
        distinct = spread([m.get("distinct_share") for m in metrics], True)
        lines.append(row([label, setting(arts[0]), seeds, *score, *cells, distinct]))
    return lines


def medpix_128(artifacts: dict) -> str:
    """The 64x64 grey label encoder beside the 128x128 runs (``results/medpix_128``), then the
    full tables of the 128x128 runs."""
    base = [a for a in artifacts["results"].get("medpix", []) if a["label"] == "labels-encoder"]
    wide = artifacts["results"].get("medpix_128", [])
    if not wide:
        return medpix(artifacts, "medpix_128")
    seeds = {a.get("seed") for a in wide}
    same = [a for a in base if a.get("seed") in seeds]  # the 64x64 runs of the same seeds
    compared = {
        **({"labels-encoder": base} if base else {}),
        **({"labels-encoder, the same seeds": same} if same and len(same) < len(base) else {}),
        **by_label(wide),
    }
    head = "Mean ± sd over the seeds named (sd 0.0 with one seed); the same carved test split."
    lines = [head, "", *setting_table(compared), "", sources(base)]
    return "\n".join(lines) + "\n" + medpix(artifacts, "medpix_128")


def medpix_heads(artifacts: dict) -> str:
    """The label encoder's captioner without and with ``decoder.labels`` (its state and every
    step reading the label heads' probabilities): ``results/medpix_heads``, both trained on
    each seed's one label encoder, at one commit."""
    return medpix(artifacts, "medpix_heads")


def encoders_table(groups: dict[str, list[dict]]) -> list[str]:
    """One row per encoder and stages (``<encoder>-frozen``, ``<encoder>-e2e``): how many
    runs kept stage 2 (end to end; the recipe keeps the stage better on validation), the
    scores, retrieval on that run's features (CIDEr-D), what the captions state right (and
    how often they state it) per label column, distinct captions."""
    lines = [
        row(["encoder, stages", "stage 2 kept", *(n for n, _ in SCORES),
             "CIDEr-D, retrieval on its features", *(f"{c}: right (stated)" for c in CONTENT),
             "distinct"]),
        "|---|" + "---:|" * (len(SCORES) + len(CONTENT) + 3),
    ]  # fmt: skip
    for label, arts in groups.items():
        metrics = [a["metrics"] for a in arts]
        content = [m.get("content") or {} for m in metrics]
        retrieval = [((m.get("baselines") or {}).get("retrieval_features") or {}) for m in metrics]
        kept = sum(a.get("training", {}).get("chosen_stage") == "stage2" for a in arts)
        lines.append(
            row(
                [
                    label,
                    f"{kept} of {len(arts)}",
                    *(spread([m.get(k) for m in metrics]) for _, k in SCORES),
                    spread([r.get("cider") for r in retrieval]),
                    *(right_stated(content, c) for c in CONTENT),
                    spread([m.get("distinct_share") for m in metrics], True),
                ]
            )
        )
    return lines


def heads_table(groups: dict[str, list[dict]]) -> list[str]:
    """One row per label classifier: each head's accuracy on the test split."""
    lines = [row(["label classifier", *CONTENT]), "|---|" + "---:|" * len(CONTENT)]
    for label, arts in groups.items():
        cells = (spread([a["metrics"].get(f"accuracy_{c}") for a in arts], True) for c in CONTENT)
        lines.append(row([label, *cells]))
    return lines


def medpix_constant(artifacts: dict) -> str:
    """``results/medpix_constant``: the encoders' end-to-end runs evaluated again with the
    strongest single sentence (``baselines.constant_best_val``) among the baselines."""
    return medpix(artifacts, "medpix_constant")


def medpix_encoders(artifacts: dict) -> str:
    """``results/medpix_encoders``: the captioner on each encoder, frozen and end to end, then
    the label classifiers' heads on the same test images."""
    results = artifacts["results"].get("medpix_encoders", [])
    if not results:
        return "No encoder comparison is recorded yet (MEDPIX_ENCODERS=1 experiments/medpix.sh).\n"
    captioners = by_label([a for a in results if a.get("kind") == "captioner"])
    classifiers = by_label([a for a in results if a.get("kind") == "classifier"])
    seeds = sorted({a.get("seed") for a in results}, key=str)
    head = f"Mean ± sd over seeds {', '.join(map(str, seeds))}; test split carved from train."
    lines = [head, "", *encoders_table(captioners), "", *heads_table(classifiers)]
    return "\n".join([*lines, "", sources(results)]) + "\n"
