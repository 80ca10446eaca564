"""Every number the documents state holds against its artifact: the table
experiments/claims_table/claims.toml ties each to a JSON value (or a formula over several),
and the scanned documents (the README, the model card, the docs/ and experiments/ pages of
results: claims.SCANNED) hold no measured-looking number that the table neither checks nor
allows with a reason."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_claims_module():
    """experiments/claims.py as a module (experiments/ is not part of the package)."""
    spec = importlib.util.spec_from_file_location("claims", ROOT / "experiments" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["claims"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


claims = load_claims_module()
CLAIMS, ALLOWED = claims.load_claims()


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: f"{c.file}:{c.value}:{c.text[:40]}")
def test_each_claim_holds_against_its_artifact(claim):
    try:
        failure = claims.check_claim(ROOT, claim)
    except claims.CommitMissing as missing:  # an earlier benchmark file, from the history
        pytest.skip(str(missing))
    assert failure is None, failure


@pytest.mark.parametrize("name", claims.SCANNED)
def test_no_measured_number_without_a_claim(name):
    assert claims.scan(ROOT, name, CLAIMS, ALLOWED) == []


def test_every_allowance_gives_its_reason_and_still_applies():
    for entry in ALLOWED:
        assert entry.get("reason"), entry
        text = claims.flat((ROOT / entry["file"]).read_text())
        assert claims.flat(entry["text"]) in text, f"stale allowance: {entry}"


def test_rounding_is_half_a_unit_of_the_last_digit():
    assert claims.parse_number("1,982") == (1982.0, 1.0)
    stated, unit = claims.parse_number("5.2e-7")
    assert stated == pytest.approx(5.2e-7) and unit == pytest.approx(1e-8)


@pytest.fixture
def scratch(tmp_path):
    """A document, an artifact and a claims table in a scratch root, free to edit."""
    (tmp_path / "experiments" / "claims_table").mkdir(parents=True)
    (tmp_path / "doc.md").write_text("It took 49.9 s, 3.96x faster,\nat 99.72% accuracy.\n")
    (tmp_path / "run.json").write_text('{"t": {"s": 49.86}, "acc": 0.99718}')
    (tmp_path / "experiments" / "claims_table" / "claims.toml").write_text(
        '[[claim]]\nfile = "doc.md"\ntext = "It took 49.9 s"\nsource = "run.json#/t/s"\n'
        '[[claim]]\nfile = "doc.md"\ntext = "at 99.72% accuracy"\nsource = "run.json#/acc"\n'
        'expr = "v * 100"\n'
        '[[allow]]\nfile = "doc.md"\ntext = "3.96x"\nreason = "an example"\n'
    )
    return tmp_path


def run_in(root: Path):
    found, allowed = claims.load_claims(root / "experiments" / "claims_table" / "claims.toml")
    failures = [f for c in found if (f := claims.check_claim(root, c))]
    return failures, claims.scan(root, "doc.md", found, allowed)


def test_a_claim_that_holds_spans_a_line_break(scratch):
    assert run_in(scratch) == ([], [])


def test_an_edited_number_fails_and_names_the_artifact_value(scratch):
    doc = scratch / "doc.md"
    doc.write_text(doc.read_text().replace("49.9 s", "45.0 s"))
    failures, loose = run_in(scratch)
    assert failures == ["doc.md: 'It took 49.9 s': text not found"]
    assert loose and "45.0" in loose[0]


def test_a_changed_artifact_fails(scratch):
    (scratch / "run.json").write_text('{"t": {"s": 51.2}, "acc": 0.99718}')
    failures, _ = run_in(scratch)
    assert failures == ["doc.md: 'It took 49.9 s': states 49.9, the artifact gives 51.2 (v)"]


def test_a_value_rounding_to_another_last_digit_fails(scratch):
    (scratch / "run.json").write_text('{"t": {"s": 49.86}, "acc": 0.997251}')
    failures, _ = run_in(scratch)
    assert len(failures) == 1 and "states 99.72" in failures[0]


def test_a_missing_artifact_or_pointer_fails(scratch):
    (scratch / "run.json").write_text('{"t": {}, "acc": 0.99718}')
    failures, _ = run_in(scratch)
    assert len(failures) == 1 and "artifact unreadable (KeyError" in failures[0]
    (scratch / "run.json").unlink()
    failures, _ = run_in(scratch)
    assert len(failures) == 2 and all("artifact unreadable" in f for f in failures)


def test_a_new_number_in_a_scanned_document_needs_a_claim(scratch):
    doc = scratch / "doc.md"
    doc.write_text(doc.read_text() + "Peak memory 1,982 MiB; `--keep 0.997` is code.\n")
    _, loose = run_in(scratch)
    assert len(loose) == 1 and "1,982" in loose[0]


def test_expressions_run_arithmetic_only():
    assert claims.evaluate("(n / 5) / (o / 4)", {"n": 197.2, "o": 49.86}) == pytest.approx(
        3.164, abs=1e-3
    )
    assert claims.evaluate("max(a, b) * 100", {"a": 0.1, "b": 0.2}) == pytest.approx(20)
    with pytest.raises(ValueError):
        claims.evaluate("__import__('os')", {})


def test_a_rendered_table_is_left_to_the_tables_test(scratch):
    doc = scratch / "doc.md"
    table = "<!-- table:profile-training -->\n| fit | 55.7 s |\n<!-- /table:profile-training -->\n"
    doc.write_text(doc.read_text() + table)
    assert run_in(scratch) == ([], [])
    doc.write_text(doc.read_text().replace("<!-- /table:profile-training -->\n", ""))
    _, loose = run_in(scratch)
    assert len(loose) == 1 and "55.7" in loose[0]


def test_the_reproducibility_claim_says_what_its_artifacts_show():
    """README.md: classifier reruns at one commit are bit-identical, and small captioner runs,
    with op determinism too, which changes the weights; the full-data captioner's are not; the
    seed-0 captioners of three commits differ."""
    import json

    results = ROOT / "experiments" / "results"
    runs = {p.stem: json.loads(p.read_text()) for p in results.glob("reproducibility_*.json")}
    identical = ["classifier_full", "classifier_slice", "captioner_slice"]
    for name in identical:
        for mode, found in runs[f"reproducibility_{name}"]["modes"].items():
            assert found["bit_identical"] and len(set(found["weights_sha256"])) == 1, (name, mode)
    for name in ("classifier_slice", "captioner_slice"):
        sums = {
            m: f["weights_sha256"][0] for m, f in runs[f"reproducibility_{name}"]["modes"].items()
        }
        assert sums["default"] != sums["op_determinism"], name
    full = runs["reproducibility_captioner_full"]["modes"]["default"]
    assert not full["bit_identical"] and len(set(full["weights_sha256"])) == 3
    strict = runs["reproducibility_captioner_full_op_determinism"]["modes"]["op_determinism"]
    assert "error" not in strict and not strict["bit_identical"]  # no op raised; still differ
    seed0 = ["attention-readout-seed0", "attention-readout-seed0-rerun"]
    seed0.append("attention-readout-seed0-refactored-trainer")
    found = [json.loads((results / "captioner" / f"{n}.json").read_text()) for n in seed0]
    assert len({f["training"]["weights_sha256"] for f in found}) == 3
    assert len({f["code"]["commit"] for f in found}) == 3
    readme = claims.flat((ROOT / "README.md").read_text())
    assert "a rerun of the classifier with the same seed is bit-identical" in readme
    assert "The captioner on the full copy is not" in readme
