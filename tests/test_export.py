"""``captioning export``: the SavedModel of the bundled captioner, loaded by plain TensorFlow in a
process that never imports ``captioning``, gives the captions ``captioning caption`` gives on
50 real MedNIST images; its TF image decoding and phrasing seeds equal the numpy/Pillow ones;
formats that do not convert are refused with one line and leave nothing behind."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import ImageError, load_image, open_image

from helpers import tiny_captioner_run

N_IMAGES = 50
EXPORT_JSON = "export.json"

# Runs in a fresh interpreter: plain TensorFlow only, and it checks that.
LOAD_AND_CALL = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    folder, listing, pixels_file = sys.argv[1:4]
    model = tf.saved_model.load(folder)
    files = [open(p, "rb").read() for p in json.load(open(listing))]
    out = model.signatures["serving_default"](images=tf.constant(files))
    rows = [
        {k: (v[i].decode() if isinstance(v[i], bytes) else v[i].item())
         for k, v in ((k, t.numpy()) for k, t in out.items())}
        for i in range(len(files))
    ]
    pixels = model.signatures["serving_pixels"](pixels=tf.constant(np.load(pixels_file)))
    same = [p.decode() for p in pixels["caption"].numpy()]
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "captioning")
    print(json.dumps({"rows": rows, "pixel_captions": same, "leaked": leaked}))
    """
)


def _real_images(archive, n: int) -> list[tuple[str, bytes]]:
    """``n`` JPEG members of the archive, spread over its classes (every 40th per class)."""
    picked: dict[str, list] = {}
    seen: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpeg"):
                continue
            cls = member.name.split("/")[-2]
            seen[cls] = seen.get(cls, 0) + 1
            if seen[cls] % 40 == 1 and len(picked.setdefault(cls, [])) < n:
                picked[cls].append((member.name, tar.extractfile(member).read()))
    rows = [item for group in zip(*picked.values(), strict=False) for item in group]
    return rows[:n]


def _photo_like(seed: int = 0) -> bytes:
    """A colourful 96x128 RGB 'photograph': smooth gradients and blocks, no anatomy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:128]
    rgb = np.stack([x * 2, y * 2 + 40, 255 - x - y], -1).astype(np.float64)
    for _ in range(6):
        r, c = rng.integers(0, 80), rng.integers(0, 110)
        rgb[r : r + 16, c : c + 18] = rng.integers(0, 256, 3)
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from captioning.bundled import bundled_run
    from captioning.export import export_run

    out = tmp_path_factory.mktemp("export") / "model"
    body = export_run(None, out, command="pytest")
    return bundled_run("captioner"), out, body


@pytest.mark.slow
def test_saved_model_matches_cli_on_real_images(exported, mednist_archive, tmp_path):
    from captioning.captions.parse import parse_caption
    from captioning.captions.templates import load_template_set
    from captioning.commands.caption import caption_files

    run, out, body = exported
    assert (out / "export.json").is_file() and json.loads((out / "export.json").read_text())
    fields = body["findings"]  # the run's template set's fields: one string output each
    assert fields == list(load_template_set(body["templates"]).fields) and fields
    outputs = body["signatures"]["serving_default"]["outputs"]
    for name in fields:
        assert outputs[f"finding_{name}"] == {"dtype": "string", "shape": [None]}
    assert body["signatures"]["serving_default"]["inputs"] == {
        "images": {"dtype": "string", "shape": [None]}
    }
    paths = []
    for name, data in _real_images(mednist_archive, N_IMAGES):
        paths.append(tmp_path / name.replace("/", "_"))
        paths[-1].write_bytes(data)
    assert len(paths) == N_IMAGES
    photo = tmp_path / "photo.png"
    photo.write_bytes(_photo_like())
    # a radiograph tinted and stored as colour JPEG (no colour beyond the tint: judged by the
    # rule), and the same radiograph in false colour (refused for its colour)
    grey = np.asarray(Image.open(paths[0]).convert("L"), np.float64)
    tinted, coloured = tmp_path / "tinted.jpg", tmp_path / "false_colour.png"
    tint = np.stack([grey * 0.9 + 12, grey, grey * 0.8 + 20], -1)
    Image.fromarray(tint.clip(0, 255).astype(np.uint8)).save(tinted, quality=80)
    hue = np.stack([grey, 255 - grey, np.abs(grey - 128) * 2], -1)
    Image.fromarray(hue.clip(0, 255).astype(np.uint8)).save(coloured)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    files = [str(p) for p in [*paths, photo, tinted, coloured, text]]
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps(files))
    np.save(tmp_path / "pixels.npy", np.stack([load_image(p) for p in files[:-1]]))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CALL, str(out / "saved_model"), str(listing),
         str(tmp_path / "pixels.npy")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["leaked"] == []
    cli = io.StringIO()
    caption_files(run, files, as_json=True, out=cli)
    expected = [json.loads(line) for line in cli.getvalue().splitlines()]
    rows = served["rows"]
    same = sum(
        e.get("caption", "") == r["caption"] and e.get("class", r["class"]) == r["class"]
        for e, r in zip(expected[:N_IMAGES], rows[:N_IMAGES], strict=True)
    )
    scoped = sum(e["in_scope"] for e in expected[:N_IMAGES])
    print(f"\n{same}/{N_IMAGES} real images ({scoped} in scope): same caption and class as the CLI")
    assert same == N_IMAGES
    for e, r in zip(expected[:-1], rows[:-1], strict=True):
        assert r["error"] == ""
        assert r["in_scope"] == e["in_scope"]
        assert r["ood_score"] == pytest.approx(e["ood_score"], rel=1e-4, abs=1e-3)
        assert r["out_of_scope_reason"] == e.get("out_of_scope_reason", "")  # one rule
        if e["in_scope"]:
            assert r["class_probability"] == pytest.approx(e["prob"], abs=1e-4)
            for name, p in e["confidence"].items():
                if name != "class":
                    got = r[f"confidence_{name}"]
                    assert np.isnan(got) if p is None else got == pytest.approx(p, abs=1e-4)
        # findings: the CLI's where it captions (as parse-back reads the caption), else ''
        said = e.get("findings", dict.fromkeys(fields))
        assert "caption" not in e or said == parse_caption(e["caption"], body["templates"]).fields
        assert {f: r[f"finding_{f}"] for f in fields} == {f: said[f] or "" for f in fields}
    stated = sum(bool(r[f"finding_{f}"]) for r in rows for f in fields)
    print(f"{stated} findings stated by the SavedModel, each equal to the CLI's")
    assert stated >= len(fields) * scoped // 2  # most captions state their findings
    # the photograph: out of scope in both, no caption in both
    assert expected[N_IMAGES]["in_scope"] is False and "caption" not in expected[N_IMAGES]
    assert rows[N_IMAGES]["in_scope"] is False and rows[N_IMAGES]["caption"] == ""
    colour_line = "it is a colour image ("
    assert not expected[N_IMAGES + 1].get("out_of_scope_reason", "").startswith(colour_line)
    assert expected[N_IMAGES + 2]["out_of_scope_reason"].startswith(colour_line)
    assert rows[N_IMAGES + 2]["out_of_scope_reason"].startswith(colour_line)  # one rule
    # the text file: an error entry in the CLI, a flagged row (not a failed call) here
    assert expected[-1]["error"] == "not a PNG, JPEG or DICOM image"
    assert rows[-1]["error"] == "not a PNG or JPEG image"  # the SavedModel reads no DICOM
    assert rows[-1]["in_scope"] is False and rows[-1]["caption"] == ""
    # the uint8 signature captions the decoded pixels the same way, where not refused for
    # a colour that bare pixels do not carry
    for pixel_caption, r in zip(served["pixel_captions"], rows[:-1], strict=True):
        if not r["out_of_scope_reason"].startswith(colour_line):
            assert pixel_caption == r["caption"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_unsupported_formats_refused_in_one_line(fmt, tmp_path):
    out = tmp_path / "model"
    done = subprocess.run(
        [sys.executable, "-m", "captioning.cli", "export", "--out", str(out), "--format", fmt],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0
    assert len(lines) == 1 and lines[0].startswith(f"error: {fmt}: "), done.stderr[-2000:]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "spec",
    [
        DEFAULT_IMAGE,
        ImageSpec(128, 1),
        ImageSpec(64, 3),
        ImageSpec(224, 3),
        ImageSpec(64, 1, "pad"),
        ImageSpec(128, 3, "pad"),
    ],
    ids=str,
)
def test_tf_decoding_equals_pillow(tmp_path, spec):
    """PNG (grey, 1-bit, 16-bit, RGB, RGBA, grey+alpha, palette, with a transparent colour) and
    JPEG (grey, colour, large enough for Pillow's reduced-scale decoding), square or not, small
    or large, decoded at the default 64x64 grey and at other sizes, grey and RGB, stretched or
    padded; and the files that become error rows."""
    import tensorflow as tf

    from captioning.export.images import decode_images

    rng = np.random.default_rng(0)

    def encode(array, fmt, **kw):
        out = io.BytesIO()
        image = Image.fromarray(array)
        colours = kw.pop("palette", 0)
        (image.quantize(colours) if colours else image).save(out, format=fmt, **kw)
        return out.getvalue()

    files = [
        encode(rng.integers(0, 256, (64, 64), dtype=np.uint8), "JPEG"),
        encode(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), "JPEG"),
        encode(rng.integers(0, 256, (530, 530), dtype=np.uint8), "JPEG", quality=70),
        encode(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "JPEG"),
        encode(rng.integers(0, 256, (100, 70, 3), dtype=np.uint8), "PNG"),
        encode(rng.integers(0, 256, (30, 50), dtype=np.uint8), "PNG"),
        encode(rng.integers(0, 256, (40, 150), dtype=np.uint8), "PNG"),  # one side enlarged
        encode(rng.integers(0, 256, (130, 130, 4), dtype=np.uint8), "PNG"),
        encode(rng.integers(0, 256, (77, 91, 2), dtype=np.uint8)[..., 0], "PNG"),
        encode(rng.integers(0, 60000, (90, 90), dtype=np.uint16), "PNG"),
        encode(rng.integers(0, 256, (80, 65, 3), dtype=np.uint8), "PNG", palette=32),
        encode(
            rng.integers(0, 256, (80, 60, 3), dtype=np.uint8), "PNG", palette=16, transparency=3
        ),
        encode(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8), "PNG", palette=8, bits=4),
        encode(rng.random((70, 70)) > 0.5, "PNG"),  # 1-bit
        encode(rng.integers(0, 256, (64, 64), dtype=np.uint8), "PNG", transparency=7),
        encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "PNG", transparency=(1, 2, 3)),
    ]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 9000, 5000, 8, 0, 0, 0, 0)  # 45 megapixels, grey
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    bad = [b"", b"GIF89a...", huge]
    pixels, errors, colour = decode_images(tf.constant([*files, *bad]), spec)
    decoded = [open_image(f, spec=spec) for f in files]
    np.testing.assert_array_equal(pixels.numpy()[: len(files)], [d.pixels for d in decoded])
    # the files' colour, measured on the same pixels (grey files: 0; colour noise: tens)
    np.testing.assert_allclose(colour.numpy(), [d.colour for d in decoded] + [0] * 3, atol=1e-6)
    assert colour.numpy()[1] > 20 and colour.numpy()[0] < 1e-3
    problems = []
    for data in bad:
        with pytest.raises(ImageError) as caught:
            load_image(data)
        # the same words, less DICOM, which the SavedModel does not read
        problems.append(caught.value.problem.replace("PNG, JPEG or DICOM", "PNG or JPEG"))
    assert [e.decode() for e in errors.numpy()] == [""] * len(files) + problems


def varied_images() -> np.ndarray:
    """Images the seeds must agree on: blank, white, one lit pixel, gradients, noise, and a
    row-major order check (an image and its transpose)."""
    rng = np.random.default_rng(3)
    ramp = np.add.outer(2 * np.arange(64), np.arange(64)).astype(np.uint8)  # not symmetric
    lit = np.zeros((64, 64), np.uint8)
    lit[63, 63] = 1
    images = [np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8), lit, ramp]
    images += [ramp * 3, (ramp * 3).T, *rng.integers(0, 256, (6, 64, 64), dtype=np.uint8)]
    images += [rng.integers(0, 4, (64, 64), dtype=np.uint8) * 60]
    return np.stack(images)


@pytest.mark.slow  # tracing the unrolled SHA-256 rounds takes ~10 s
def test_tf_phrasing_seeds_equal_numpy():
    """The twin seeds: hashlib (CLI) and SHA-256 in TF ops (SavedModel), and their halves."""
    grey = varied_images()
    # RGB images hash their (S, S, 3) bytes: a channel order check (the same image, rolled), on
    # 16x16 corners (tracing grows with the bytes hashed: 64x64x3 took a minute)
    corner = grey[:, -16:, -16:]
    rgb = np.stack([corner, corner // 2, 255 - corner], -1)
    rgb = np.concatenate([rgb, np.roll(rgb, 1, axis=-1)])
    for images in (grey, rgb):
        _check_seeds(images)


def _check_seeds(images):
    """``test_tf_phrasing_seeds_equal_numpy`` for one batch of images."""
    import tensorflow as tf

    from captioning.export import seeds
    from captioning.phrasing import content_seeds, seed_halves

    expected = content_seeds(images)
    assert len(set(expected.tolist())) == len(images)
    np.testing.assert_array_equal(seeds.content_seeds(tf.constant(images)).numpy(), expected)
    low, high = seeds.content_seed_halves(tf.constant(images))
    for got, want in zip((low, high), seed_halves(expected), strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("method", ["neighbours", "gaussian", "mahalanobis", "msp", "energy"])
def test_tf_scores_equal_numpy(method):
    """The twin scope scores, reasons and class probability: ``export.scores`` against
    ``Scope.scores``, ``Scope.reasons`` and ``Captioner.confidences``' numpy."""
    from captioning.export.scores import class_probability, judge_fn
    from captioning.metrics.calibration import class_groups, group_probs
    from captioning.scope import fit_scope

    rng = np.random.default_rng(7)
    pooled = rng.normal(size=(80, 5)).astype(np.float32) + np.arange(80)[:, None] % 4
    logits = rng.normal(size=(80, 4)).astype(np.float32) * 4
    evidence = {"pooled": pooled, "logits": logits, "features": pooled, "mid": pooled[:, :3]}
    evidence["pixels"] = rng.normal(size=(80, 2)) + np.arange(80)[:, None] % 4
    labels = np.arange(60) % 4
    train = {k: v[:60] for k, v in evidence.items()}
    scope = fit_scope(train, labels, {k: v[60:] for k, v in evidence.items()}, method=method)
    names = ["a", "b", "c", "d"]
    got, lines = (t.numpy() for t in judge_fn(scope, names)(evidence))
    np.testing.assert_allclose(got, scope.scores(evidence), rtol=1e-6, atol=1e-6)
    lines = [s.decode() for s in lines]
    expected = [line or "" for line in scope.reasons(evidence, names)]
    clear = np.abs(got - scope.threshold) > 1e-6 * max(1.0, abs(scope.threshold))  # not a tie
    assert [a for a, c in zip(lines, clear, strict=True) if c] == [
        b for b, c in zip(expected, clear, strict=True) if c
    ]
    assert any(lines) and not all(lines)
    for temperature in (0.5, 1.0, 2.5):
        expected = group_probs(logits, class_groups(80, 4), temperature, 4).max(1)
        np.testing.assert_allclose(class_probability(logits, temperature), expected, rtol=1e-12)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained tiny captioner run (show-and-tell decoder, every image in scope, no
    calibration): its captions are rarely renderings of the set, so the rule-written text,
    greedy search and a run without finding confidences are what get exported."""
    from captioning.scope import METHODS, encoder_outputs, fit_scope

    run = tmp_path_factory.mktemp("tiny_run")
    model = tiny_captioner_run(run, "show_tell", max_length=10)
    images = np.random.default_rng(0).integers(0, 256, (40, 64, 64), dtype=np.uint8)
    evidence = encoder_outputs(model, images)
    part = lambda rows: {k: v[rows] for k, v in evidence.items()}  # noqa: E731
    scope = fit_scope(part(slice(30)), np.arange(30) % 6, part(slice(30, None)), method="energy")
    scope.thresholds = {m: 1e9 for m in METHODS}
    scope.save(run)
    return run


@pytest.mark.slow
def test_export_command_greedy_tiny_run(tiny_run, tmp_path, capsys):
    import tensorflow as tf

    from captioning.cli import main
    from captioning.export.text import renderings
    from captioning.inference import Captioner

    out = tmp_path / "greedy"
    assert main(["export", "--run", str(tiny_run), "--out", str(out), "--beam", "1"]) == 0
    assert "beam 1" in capsys.readouterr().out
    body = json.loads((out / "export.json").read_text())
    assert body["beam"] == 1 and body["files"] == ["saved_model"] and body["command"]
    outputs = body["signatures"]["serving_default"]["outputs"]
    assert not any(k.startswith("confidence_") for k in outputs)  # no calibration
    assert [k for k in outputs if k.startswith("finding_")] == sorted(  # findings all the same
        f"finding_{name}" for name in body["findings"]
    )
    images = np.random.default_rng(1).integers(0, 256, (12, 64, 64), dtype=np.uint8)
    images[:4] //= 8  # darker: other words, other phrasing
    captioner = Captioner(tiny_run)
    expected = captioner.caption(images, beam=1)
    rendered = set(renderings(captioner.tset).values())
    assert any(t not in rendered for t in expected.texts)  # the rule-written path is exercised
    got = tf.saved_model.load(str(out / "saved_model")).signatures["serving_pixels"](
        pixels=tf.constant(images)
    )
    assert [c.decode() for c in got["caption"].numpy()] == expected.texts
    np.testing.assert_allclose(got["class_probability"].numpy(), expected.probs, atol=1e-5)
    np.testing.assert_allclose(got["ood_score"].numpy(), expected.ood_score, rtol=1e-5)
    np.testing.assert_allclose(got["score"].numpy(), expected.scores, atol=1e-5)
    for name in body["findings"]:
        said = [f[name] or "" for f in expected.findings]
        assert [v.decode() for v in got[f"finding_{name}"].numpy()] == said
    # an empty batch is a valid request
    none = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"](
        images=tf.constant([], tf.string)
    )
    assert none["caption"].shape == (0,) and none["finding_extent"].dtype == tf.string
    # the output folder is never overwritten
    assert main(["export", "--run", str(tiny_run), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_sentence_table_equals_to_sentence():
    """Every rendering of the set, and token rows that are none (rule-written), as text."""
    import tensorflow as tf

    from captioning.captions.sentence import to_sentence
    from captioning.captions.templates import load_template_set
    from captioning.export.text import SentenceTable, renderings

    tset = load_template_set("findings")
    rows = [key.split() for key in list(renderings(tset))[::7]]
    rows += [["chest", "ct", "x-ray", "pa"], ["mri"], [], ["this", "is", "<unk>", "non-diagnostic"]]
    # (no token ends in punctuation, by the tokenisation rule: the TF rule always adds '.')
    rows += [["ct"], ["x-ray", "x-ray"], ["non-diagnostic"], ["a", "b", "c", "d", "e", "f", "g"]]
    width = max(map(len, rows))
    words = tf.constant([r + [""] * (width - len(r)) for r in rows])
    mask = tf.constant([[i < len(r) for i in range(width)] for r in rows])
    got = [t.decode() for t in SentenceTable(tset)(words, mask).numpy()]
    assert got == [to_sentence(r, tset) for r in rows]


def test_finding_table_equals_numpy_confidences():
    """The twin finding confidences: ``FindingTable`` (graph) against ``finding_logits`` and
    ``Captioner.confidences`` (numpy) on renderings of the set and other word rows,
    with random decoder logits and temperatures."""
    from types import SimpleNamespace

    import tensorflow as tf

    from captioning.captions.templates import load_template_set
    from captioning.captions.vocabulary import SPECIALS
    from captioning.confidence import finding_logits, stated_findings
    from captioning.export.text import FindingTable, renderings
    from captioning.inference import Captioner

    tset = load_template_set("findings")
    rows = [key.split() for key in list(renderings(tset))[::11]]
    rows += [rows[0][::-1], rows[1][2:], [], ["mri"]]
    vocab = [*SPECIALS, *sorted({w for r in rows for w in r})]
    index = {w: i for i, w in enumerate(vocab)}
    length = max(map(len, rows)) + 1
    tokens = np.zeros((len(rows), length), np.int32)  # words, <end>, then <pad>
    for i, row in enumerate(rows):
        tokens[i, : len(row) + 1] = [index[w] for w in row] + [2]
    logits = np.random.default_rng(9).normal(size=(len(rows), length, len(vocab))) * 3
    temperatures = {name: 0.5 + i for i, name in enumerate(tset.fields)}
    fields = finding_logits(
        lambda inputs: {"logits": tf.constant(logits, tf.float32)}, {}, tokens, 1, vocab, tset
    )
    owner = SimpleNamespace(calibration=None)
    class_logits = np.zeros((len(rows), 2), np.float32)
    expected = Captioner.confidences(owner, class_logits, fields, temperatures)
    order = np.argsort(tokens <= 0, 1, kind="stable")
    words = np.array(vocab, object)[np.take_along_axis(tokens, order, 1)].astype(str)
    count = (tokens > 0).sum(1).astype(np.int32)
    got = FindingTable(tset, vocab).confidences(
        tf.constant(words), tf.constant(count), tf.constant(logits, tf.float32), temperatures
    )
    stated = 0
    for name in tset.fields:
        want = expected[name]
        stated += int(np.isfinite(want).sum())
        np.testing.assert_allclose(got[name].numpy(), want, rtol=1e-6, equal_nan=True)
    assert stated > len(rows)  # most rows state findings: the comparison is not vacuous
    said = stated_findings(tokens, vocab, tset)  # and the stated values, as text
    values = FindingTable(tset, vocab).values(tf.constant(words), tf.constant(count))
    for name in tset.fields:
        assert [v.decode() for v in values[name].numpy()] == [s[name] or "" for s in said]
        # a confidence is that of a stated finding (not every stated one has one: this
        # vocabulary lacks some of the field's other words)
        assert all(s[name] is not None for s, p in zip(said, expected[name], strict=True) if p >= 0)


@pytest.mark.slow  # tracing the SHA-256 rounds and both searches: ~30 s
@pytest.mark.parametrize("beam", [2, 3])
def test_serving_graph_runs_the_cli_search(beam, tmp_path):
    """The SavedModel's module, called in process, captions as ``Captioner`` does with
    beam search, varied phrasing and an attention decoder (the shipped kind)."""
    import tensorflow as tf

    from captioning.export.serving import ServingModel
    from captioning.inference import Captioner

    tiny_captioner_run(tmp_path, "attention", max_length=10)
    captioner = Captioner(tmp_path)
    assert captioner.search.varied
    images = np.random.default_rng(beam).integers(0, 256, (10, 64, 64), dtype=np.uint8)
    images[:5] //= 6
    expected = captioner.caption(images, beam=beam)
    got = ServingModel(captioner, beam).serving_pixels(tf.constant(images))
    assert [c.decode() for c in got["caption"].numpy()] == expected.texts
    np.testing.assert_allclose(got["score"].numpy(), expected.scores, atol=1e-5)
    for name in captioner.finding_fields:
        said = [f[name] or "" for f in expected.findings]
        assert [v.decode() for v in got[f"finding_{name}"].numpy()] == said


@pytest.mark.slow  # one export of a tiny run: about a minute of CPU
def test_a_new_export_of_the_pinned_run_gives_the_pinned_saved_models_outputs(tmp_path):
    """``tests/fixtures`` (tests/test_compat.py): the run and the SavedModel the code of
    ab38b9c exported from it. The current export of that run gives the same outputs."""
    import math
    import shutil

    import tensorflow as tf

    from captioning.export import export_run

    fixtures = Path(__file__).resolve().parent / "fixtures"
    if not (fixtures / "expected_captions.json").is_file():
        pytest.skip("no compatibility fixtures in this checkout")
    pinned = json.loads((fixtures / "expected_captions.json").read_text())["tiny_saved_model"]
    run = tmp_path / "run"
    shutil.copytree(fixtures / "tiny_captioner_run", run)
    old = json.loads((fixtures / "tiny_saved_model" / EXPORT_JSON).read_text())
    body = export_run(run, tmp_path / "model", beam=old["beam"], command="pytest")
    for name, signature in old["signatures"].items():  # outputs added since (the reason) aside
        new = body["signatures"][name]
        assert new["inputs"] == signature["inputs"]
        assert {k: new["outputs"][k] for k in signature["outputs"]} == signature["outputs"]
    added = set(body["signatures"]["serving_default"]["outputs"]) - set(
        old["signatures"]["serving_default"]["outputs"]
    )
    assert added == {"out_of_scope_reason", *(f"finding_{name}" for name in body["findings"])}
    model = tf.saved_model.load(str(tmp_path / "model" / "saved_model"))
    files = [(fixtures / "images" / name).read_bytes() for name in pinned["images"]]
    out = model.signatures[pinned["signature"]](images=tf.constant(files))
    for i, want in enumerate(pinned["outputs"]):
        for key, expected in want.items():
            if key == "image":
                continue
            got = out[key].numpy()[i]
            got = got.decode() if isinstance(got, bytes) else got.item()
            if expected is None:
                assert math.isnan(got), (i, key)
            elif isinstance(expected, float):
                assert math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6), (i, key)
            else:
                assert got == expected, (i, key)
