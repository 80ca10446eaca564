"""``captioning quickstart --smoke`` on the real archive: every stage runs, the report links
only files that exist and states the numbers the evaluations wrote."""

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_quickstart_smoke_writes_a_complete_report(mednist_archive, tmp_path):
    out = tmp_path / "qs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "captioning.cli",
            "quickstart",
            "--source",
            str(mednist_archive),
            "--out",
            str(out),
            "--smoke",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for i, stage in enumerate(
        [
            "prepare",
            "classifier",
            "evaluate classifier",
            "captioner",
            "evaluate captioner",
            "report",
        ]
    ):
        assert f"[{i + 1}/6] {stage}" in result.stdout  # progress is visible at every stage
    report = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(links) >= 4 and all((out / link).is_file() for link in links)
    clf = json.loads((out / "runs/classifier/eval/test.json").read_text())
    cap = json.loads((out / "runs/captioner/eval/test.json").read_text())
    assert f"{100 * clf['accuracy']:.2f}% ({clf['error_count']} errors)" in report
    assert f"| {cap['bleu4']:.3f} |" in report
    assert "## Sample captions per class" in report
    assert "Phrasing of the test captions (varied): template 0 " in report
